"""Checks of RecBole atomic files, so bad input fails early and clearly.

RecBole reads ``<data_path>/<dataset>.<suffix>`` files whose header names each
column as ``field:type``. A malformed file otherwise fails deep inside pandas or
RecBole's ``Dataset`` (or, worse, loads as wrong numbers); here it fails with
the file, the line and the fix.

The checks follow how RecBole reads a file (``Dataset._load_feat``): in the
configured ``encoding``, with pandas' ``read_csv``, which takes ``"`` as a
quote character (so a ``"`` inside a value would merge or split rows: it is
refused) and reads a ``float`` column as ``float64`` (so ``nan``, ``inf`` or
any other non-number would silently change the data: refused too).
"""

import codecs
import math
import os
import re

from recbole.utils import FeatureType

from recbole_selfattn.errors import DatasetError

FEATURE_TYPES = {t.value for t in FeatureType}
_FORMAT_HINT = (
    "An atomic file is tab-separated with a header of `field:type` columns, "
    "type one of token, token_seq, float, float_seq (e.g. "
    "`user_id:token<TAB>item_id:token<TAB>timestamp:float`); see "
    "https://recbole.io/docs/user_guide/data/atomic_files.html."
)
_BOM = "\ufeff"
# Bytes that do not decode in the file's encoding, as ``errors="surrogateescape"`` gives them.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def check_atomic_file(
    path, separator="\t", required_fields=(), max_seq_len=None, seq_separator=" ", encoding="utf-8"
):
    """Validate one atomic file: that it decodes in ``encoding``, its header
    (no BOM, known types, no duplicated column), the row widths, that no value
    holds a ``"``, that ``required_fields`` are never empty, that ``float``
    and ``float_seq`` values are finite numbers and, with ``max_seq_len``,
    that no ``token_seq``/``float_seq`` value is longer."""
    try:
        codecs.lookup(encoding)
    except LookupError as e:
        raise DatasetError(f"--encoding={encoding} is not a known text encoding (e.g. utf-8, latin-1).") from e
    with open(path, encoding=encoding, errors="surrogateescape", newline="") as f:
        lines = _lines(f, path, encoding)
        header = next(lines, (1, ""))[1]
        if not header:
            raise DatasetError(f"Atomic file {path} is empty. {_FORMAT_HINT}")
        columns = _parse_header(path, header, separator)
        fields = [name for name, _ in columns]
        missing = [field for field in required_fields if field not in fields]
        if missing:
            raise DatasetError(
                f"Atomic file {path} has no column {', '.join(missing)} (its columns: "
                f"{', '.join(fields)}). Rename the column in the header, or set "
                "USER_ID_FIELD / ITEM_ID_FIELD / TIME_FIELD to the names the file uses."
            )
        required_columns = [(fields.index(field), field) for field in required_fields]
        float_columns = [i for i, (_, ftype) in enumerate(columns) if ftype.startswith("float")]
        seq_columns = [i for i, (_, ftype) in enumerate(columns) if ftype.endswith("_seq")]
        rows = 0
        for line_no, line in lines:
            if not line:
                continue
            where = f"Atomic file {path}, line {line_no}"
            row = line.split(separator)
            if len(row) != len(fields):
                raise DatasetError(
                    f"{where}: {len(row)} values for {len(fields)} header columns. "
                    f"Fix or remove that line. {_FORMAT_HINT}"
                )
            _check_no_quote(where, line)
            for column, field in required_columns:
                if not row[column].strip():
                    raise DatasetError(f"{where}: empty {field}. Fix or remove that line.")
            for i in float_columns:
                _check_numbers(where, fields[i], row[i], seq_separator if i in seq_columns else None)
            if max_seq_len is not None:
                for i in seq_columns:
                    _check_seq_len(where, fields[i], row[i], seq_separator, max_seq_len)
            rows += 1
        if rows == 0:
            raise DatasetError(f"Atomic file {path} has a header but no rows: add interactions to it.")


def _lines(f, path, encoding):
    """Yield ``(line number, line without its end)``; a line holding bytes
    that are not valid ``encoding`` text is a :class:`DatasetError`."""
    for line_no, line in enumerate(f, start=1):
        bad = _UNDECODABLE.search(line)
        if bad:
            byte = ord(bad.group()) - 0xDC00
            raise DatasetError(
                f"Atomic file {path}, line {line_no} is not valid {encoding} text (byte 0x{byte:02x} at "
                f"character {bad.start() + 1}). Pass the file's encoding with --encoding (e.g. "
                f"--encoding=latin-1), or re-save the file as {encoding}."
            )
        yield line_no, line.rstrip("\r\n")


def _parse_header(path, header, separator):
    """``[(field, type), ...]`` of a header line, or a :class:`DatasetError`."""
    if header.startswith(_BOM):
        raise DatasetError(
            f"Atomic file {path} starts with a byte-order mark (BOM, the invisible character U+FEFF), which "
            "RecBole would read as part of the first column's name. Remove the BOM (save the file as UTF-8 "
            "without BOM), or pass --encoding=utf-8-sig."
        )
    _check_no_quote(f"Atomic file {path}, line 1 (the header)", header)
    columns = []
    for column in header.split(separator):
        name, _, ftype = column.partition(":")
        if not name or ftype not in FEATURE_TYPES:
            raise DatasetError(
                f"Atomic file {path} has a malformed header column '{column}' "
                f"(expected `field:type`). {_FORMAT_HINT}"
            )
        if any(name == seen for seen, _ in columns):
            raise DatasetError(
                f"Atomic file {path} names the column '{name}' twice in its header. Every field needs "
                "its own name: rename or remove one of the two columns."
            )
        columns.append((name, ftype))
    return columns


def _check_no_quote(where, line):
    if '"' in line:
        raise DatasetError(
            f"{where} holds a '\"' character. RecBole's reader (pandas) takes '\"' as a quote and would "
            "merge or split rows around it, loading different data than the file holds. Remove or "
            "replace that character (e.g. with ') in the file."
        )


def _check_numbers(where, field, value, seq_separator):
    """A ``float`` value (or each value of a ``float_seq``) must be a finite
    number; an empty ``float`` is RecBole's missing value and is allowed."""
    values = value.split(seq_separator) if seq_separator is not None else [value]
    for text in filter(None, (v.strip() for v in values)):
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or "_" in text:
            raise DatasetError(
                f"{where}: {field} is '{text[:40]}', not a finite number. A float column holds numbers only "
                "(no nan, inf or text): fix or remove that line, or declare the column as token."
            )


def _check_seq_len(where, field, value, seq_separator, max_seq_len):
    length = len(value.split(seq_separator)) if value else 0
    if length > max_seq_len:
        raise DatasetError(
            f"{where}: {field} holds {length} values, more than "
            f"MAX_ITEM_LIST_LENGTH={max_seq_len}. Raise MAX_ITEM_LIST_LENGTH, or rebuild the file "
            "with shorter lists (python -m recbole_selfattn.data.convert session ... --max_len N)."
        )


def inter_files(config):
    """The interaction files RecBole reads: ``<dataset>.inter``, or with
    ``benchmark_filename`` one ``<dataset>.<part>.inter`` per part."""
    parts = config["benchmark_filename"] or [None]
    names = [f"{config['dataset']}.{part}.inter" if part else f"{config['dataset']}.inter" for part in parts]
    return [os.path.join(config["data_path"], name) for name in names]


def check_dataset_files(config):
    """Validate the ``.inter`` file (and any other atomic files) of ``config``'s dataset."""
    required = [config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]]
    if config["TIME_FIELD"] and config["eval_args"]["order"] == "TO":
        required.append(config["TIME_FIELD"])
    load_col = config["load_col"] or {}
    required = [f for f in required if f in load_col.get("inter", required)]
    # RecBole reads benchmark files' sequences as they are (its own lists are
    # cut to MAX_ITEM_LIST_LENGTH); a longer one breaks position embeddings.
    max_seq_len = config["MAX_ITEM_LIST_LENGTH"] if config["benchmark_filename"] else None
    encoding = config["encoding"] or "utf-8"  # RecBole's key; unset, its reader decodes UTF-8
    for path in inter_files(config):
        check_atomic_file(
            path, config["field_separator"], required, max_seq_len, config["seq_separator"], encoding
        )
    for suffix in ("user", "item"):
        path = os.path.join(config["data_path"], f"{config['dataset']}.{suffix}")
        if os.path.isfile(path) and (config["load_col"] is None or suffix in load_col):
            check_atomic_file(path, config["field_separator"], encoding=encoding)
