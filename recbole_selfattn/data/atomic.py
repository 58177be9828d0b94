"""Checks of RecBole atomic files, so bad input fails early and clearly.

RecBole reads ``<data_path>/<dataset>.<suffix>`` files whose header names each
column as ``field:type``. A malformed file otherwise fails deep inside pandas or
RecBole's ``Dataset`` (or, worse, loads as wrong numbers); here it fails with
the file, the line and the fix.
"""

import csv
import os

from recbole.utils import FeatureType

from recbole_selfattn.errors import DatasetError

FEATURE_TYPES = {t.value for t in FeatureType}
_FORMAT_HINT = (
    "An atomic file is tab-separated with a header of `field:type` columns, "
    "type one of token, token_seq, float, float_seq (e.g. "
    "`user_id:token<TAB>item_id:token<TAB>timestamp:float`); see "
    "https://recbole.io/docs/user_guide/data/atomic_files.html."
)


def check_atomic_file(path, separator="\t", required_fields=(), max_seq_len=None, seq_separator=" "):
    """Validate the header, the row widths, and that ``required_fields`` are
    never empty in one atomic file; with ``max_seq_len``, also that no
    ``token_seq``/``float_seq`` value is longer."""
    with open(path, encoding="utf-8", newline="") as f:
        header = f.readline().rstrip("\r\n")
        if not header:
            raise DatasetError(f"Atomic file {path} is empty. {_FORMAT_HINT}")
        fields, seq_columns = [], []
        for column in header.split(separator):
            name, _, ftype = column.partition(":")
            if not name or ftype not in FEATURE_TYPES:
                raise DatasetError(
                    f"Atomic file {path} has a malformed header column '{column}' "
                    f"(expected `field:type`). {_FORMAT_HINT}"
                )
            if max_seq_len is not None and ftype.endswith("_seq"):
                seq_columns.append(len(fields))
            fields.append(name)
        missing = [field for field in required_fields if field not in fields]
        if missing:
            raise DatasetError(
                f"Atomic file {path} has no column {', '.join(missing)} (its columns: "
                f"{', '.join(fields)}). Rename the column in the header, or set "
                "USER_ID_FIELD / ITEM_ID_FIELD / TIME_FIELD to the names the file uses."
            )
        required_columns = [(fields.index(field), field) for field in required_fields]
        rows = 0
        for line_no, row in enumerate(csv.reader(f, delimiter=separator, quoting=csv.QUOTE_NONE), start=2):
            if not row:
                continue
            if len(row) != len(fields):
                raise DatasetError(
                    f"Atomic file {path}, line {line_no}: {len(row)} values for "
                    f"{len(fields)} header columns. Fix or remove that line. {_FORMAT_HINT}"
                )
            for column, field in required_columns:
                if not row[column].strip():
                    raise DatasetError(f"Atomic file {path}, line {line_no}: empty {field}. Fix or remove that line.")
            for i in seq_columns:
                length = len(row[i].split(seq_separator)) if row[i] else 0
                if length > max_seq_len:
                    raise DatasetError(
                        f"Atomic file {path}, line {line_no}: {fields[i]} holds {length} values, more than "
                        f"MAX_ITEM_LIST_LENGTH={max_seq_len}. Raise MAX_ITEM_LIST_LENGTH, or rebuild the file "
                        "with shorter lists (python -m recbole_selfattn.data.convert session ... --max_len N)."
                    )
            rows += 1
        if rows == 0:
            raise DatasetError(f"Atomic file {path} has a header but no rows: add interactions to it.")


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
    for path in inter_files(config):
        check_atomic_file(path, config["field_separator"], required, max_seq_len, config["seq_separator"])
    for suffix in ("user", "item"):
        path = os.path.join(config["data_path"], f"{config['dataset']}.{suffix}")
        if os.path.isfile(path) and suffix in load_col:
            check_atomic_file(path, config["field_separator"])
