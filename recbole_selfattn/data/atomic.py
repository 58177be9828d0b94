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


def check_atomic_file(path, separator="\t", required_fields=()):
    """Validate the header, the row widths, and that ``required_fields`` are
    never empty in one atomic file."""
    with open(path, encoding="utf-8", newline="") as f:
        header = f.readline().rstrip("\r\n")
        if not header:
            raise DatasetError(f"Atomic file {path} is empty. {_FORMAT_HINT}")
        fields = []
        for column in header.split(separator):
            name, _, ftype = column.partition(":")
            if not name or ftype not in FEATURE_TYPES:
                raise DatasetError(
                    f"Atomic file {path} has a malformed header column '{column}' "
                    f"(expected `field:type`). {_FORMAT_HINT}"
                )
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
            rows += 1
        if rows == 0:
            raise DatasetError(f"Atomic file {path} has a header but no rows: add interactions to it.")


def inter_file(config):
    return os.path.join(config["data_path"], f"{config['dataset']}.inter")


def check_dataset_files(config):
    """Validate the ``.inter`` file (and any other atomic files) of ``config``'s dataset."""
    required = [config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]]
    if config["TIME_FIELD"] and config["eval_args"]["order"] == "TO":
        required.append(config["TIME_FIELD"])
    load_col = config["load_col"] or {}
    required = [f for f in required if f in load_col.get("inter", required)]
    check_atomic_file(inter_file(config), config["field_separator"], required)
    for suffix in ("user", "item"):
        path = os.path.join(config["data_path"], f"{config['dataset']}.{suffix}")
        if os.path.isfile(path) and suffix in load_col:
            check_atomic_file(path, config["field_separator"])
