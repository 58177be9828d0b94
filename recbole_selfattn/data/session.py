"""Session datasets (Tmall, RetailRocket, Diginetica) as RecBole benchmark files.

The published session protocol (S²-DHCN, Xia et al. AAAI 2021; COTREC; MTAW,
Ouyang et al. SIGIR 2023) ships each dataset as two Python pickles:

* ``all_train_seq.txt``: ``list[list[int]]``, one list of item ids per training
  session, in click order;
* ``test.txt``: ``tuple(list[list[int]], list[int])``, the (prefix, next item)
  test pairs, already augmented.

Training pairs are every prefix of every training session, longest first:
for ``s`` in the sessions, for ``i = 1 .. len(s) - min_prefix``, the pair
``(s[:-i], s[-i])``. ``min_prefix`` is the shortest prefix the dataset's test
chains use: 1 for Tmall and Diginetica, 2 for RetailRocket (its test chains
stop at 2-item prefixes). The protocol has no validation set; the pairs of the
last ``valid_ratio`` of the training sessions (in file order) are held out as
one, so no session contributes to both. Test pairs are kept as given.

Each pair becomes one row of a RecBole benchmark atomic file (the layout of
RecBole's own session benchmarks)::

    session_id:token  item_id_list:token_seq  item_id:token
    tr0               3 7 9                    12

with the prefix oldest first and truncated to its ``max_len`` most recent
items (RecBole reads a ``token_seq`` as is, and a position-embedding model
cannot take more than ``MAX_ITEM_LIST_LENGTH`` items). Session ids are
``tr<k>``, ``va<k>``, ``te<k>``: unique across the three files.

The pickles are read with :class:`RestrictedUnpickler`, which loads no class
or function at all, and their structure is checked before use: a pickle can
run arbitrary code when loaded, and these files come from third parties.

The rows are streamed to the files, each prefix cut to ``max_len`` items
before it is copied, so memory stays linear in the pickles' size (not
quadratic in the session length). The input may hold at most
:data:`MAX_ITEM_IDS` item ids in all (the sum of the lengths of its sessions
and test prefixes; the published datasets hold about 1.2 million): each
output row consumes at least one of them, so this bounds the rows written,
the output (at most ``max_len + 1`` ids a row) and the time spent.
"""

import math
import pickle
from dataclasses import dataclass
from pathlib import Path

from recbole_selfattn.errors import DatasetError
from recbole_selfattn.safe_write import atomic_open

SESSION_HEADER = "session_id:token\titem_id_list:token_seq\titem_id:token\n"
TRAIN_FILE, TEST_FILE = "all_train_seq.txt", "test.txt"
PARTS = ("train", "valid", "test")
MAX_ITEM_IDS = 5_000_000


@dataclass(frozen=True)
class SessionSpec:
    """Per-dataset protocol settings.

    Attributes:
        min_prefix (int): shortest training prefix (the shortest test prefix).
        train_pairs (int): published number of augmented training pairs,
            reported beside the converted count as a check.
    """

    min_prefix: int
    train_pairs: int


SESSION_DATASETS = {
    "tmall": SessionSpec(min_prefix=1, train_pairs=351_268),
    "retailrocket": SessionSpec(min_prefix=2, train_pairs=433_648),
    "diginetica": SessionSpec(min_prefix=1, train_pairs=719_470),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global (class, function, module
    attribute), so a pickle can only build plain containers and scalars."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"it refers to the Python global '{module}.{name}', which is never loaded")


def load_pickle(path):
    """Load ``path`` with :class:`RestrictedUnpickler`; any failure is a
    :class:`DatasetError` naming the file."""
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except OSError as e:
        raise DatasetError(f"Cannot read {path}: {e}.") from e
    except Exception as e:  # a malformed pickle raises almost any exception type
        raise DatasetError(
            f"{path} is not a pickle of plain lists of item ids: {e}. Session files must be the "
            "published all_train_seq.txt / test.txt pickles (lists and tuples of ints only); "
            "re-copy the file from its source."
        ) from e


def _check_sessions(value, path, what):
    """Check ``value`` is a list (or tuple) of non-empty lists (or tuples)."""
    if not isinstance(value, (list, tuple)):
        raise DatasetError(f"{path}: {what} must be a list of item-id lists, not {type(value).__name__}.")
    for k, session in enumerate(value):
        if not isinstance(session, (list, tuple)) or not session:
            raise DatasetError(
                f"{path}: {what} entry {k} must be a non-empty list of item ids, not {session!r:.80}."
            )
    return value


def _check_item_ids(sessions, path, what):
    """Check every item of ``sessions`` is an int >= 1 (after :func:`check_size`)."""
    for k, session in enumerate(sessions):
        for item in session:
            if type(item) is not int or item < 1:
                raise DatasetError(
                    f"{path}: {what} entry {k} holds {item!r:.40}; item ids must be ints >= 1 "
                    "(0 is reserved for padding)."
                )


def check_size(raw, sessions, prefixes, max_item_ids=MAX_ITEM_IDS):
    """Refuse an input of more than ``max_item_ids`` item ids in all (see the
    module's docstring); counting them costs one step a list."""
    total = sum(map(len, sessions)) + sum(map(len, prefixes))
    if total > max_item_ids:
        raise DatasetError(
            f"{raw} holds {total:,} item ids in its sessions and test prefixes, more than the converter's "
            f"limit of {max_item_ids:,} (the published session datasets hold about 1.2 million). Every id "
            "can become one output row of up to max_len items, so this bounds the files written. Check "
            "that the pickles are the dataset you meant; if they are, pass a higher --max_item_ids "
            "(the output may then take up to that many rows of max_len + 1 ids)."
        )


def read_train_sessions(path):
    """``all_train_seq.txt``: ``list[list[int]]`` (the item ids are checked
    by :func:`convert_session`)."""
    return _check_sessions(load_pickle(path), path, "the training sessions")


def read_test_pairs(path):
    """``test.txt``: ``(list[list[int]] prefixes, list[int] labels)``; returns
    both (the prefixes' item ids are checked by :func:`convert_session`)."""
    data = load_pickle(path)
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise DatasetError(
            f"{path} must hold a pair (prefixes, labels), i.e. tuple(list[list[int]], list[int]); "
            f"it holds {type(data).__name__}."
        )
    prefixes = _check_sessions(data[0], path, "the test prefixes")
    labels = data[1]
    if not isinstance(labels, (list, tuple)) or any(type(x) is not int or x < 1 for x in labels):
        raise DatasetError(f"{path}: the test labels must be a list of item ids (ints >= 1).")
    if len(labels) != len(prefixes):
        raise DatasetError(f"{path} has {len(prefixes)} test prefixes but {len(labels)} labels.")
    if not labels:
        raise DatasetError(f"{path} holds no test pairs.")
    return prefixes, labels


def prefix_pairs(sessions, min_prefix, max_len):
    """Yield every ``(s[:-i], s[-i])`` for ``i = 1 .. len(s) - min_prefix``,
    session by session, longest prefix first, each prefix cut to its
    ``max_len`` most recent items before it is copied."""
    for s in sessions:
        for end in range(len(s) - 1, min_prefix - 1, -1):
            yield s[max(0, end - max_len) : end], s[end]


def count_pairs(sessions, min_prefix, max_len):
    """``(pairs, truncated)``: what :func:`prefix_pairs` yields, and how many
    of its prefixes are longer than ``max_len``, without building them."""
    pairs = sum(max(0, len(s) - min_prefix) for s in sessions)
    longest_kept = max(max_len, min_prefix - 1)
    truncated = sum(max(0, len(s) - 1 - longest_kept) for s in sessions)
    return pairs, truncated


def write_atomic_file(path, header, lines):
    """Write ``header`` and ``lines`` to ``path`` whole or not at all, so a
    failed conversion leaves no half-written file; returns the line count."""
    rows = 0
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(header)
        for line in lines:
            f.write(line)
            rows += 1
    return rows


def convert_session(name, raw, out, valid_ratio=0.1, max_len=50, min_prefix=None, max_item_ids=MAX_ITEM_IDS):
    """Write ``out/<name>/<name>.{train,valid,test}.inter`` from the pickles in ``raw``.

    Args:
        name (str): dataset name (``tmall``, ``retailrocket``, ``diginetica`` or
            another dataset in the same format, which then needs ``min_prefix``).
        raw (str or Path): folder holding ``all_train_seq.txt`` and ``test.txt``.
        out (str or Path): RecBole ``data_path``; the files go to ``out/<name>/``.
        valid_ratio (float): share of the training sessions (the last ones)
            whose pairs form the validation set, in (0, 1).
        max_len (int): prefixes keep their ``max_len`` most recent items.
        min_prefix (int): shortest training prefix; ``None`` takes the dataset's.
        max_item_ids (int): refuse an input holding more item ids in all
            (sessions and test prefixes); see the module's docstring.

    Returns:
        dict: ``sessions`` (training sessions read), ``train_pairs`` (all
        augmented training pairs), ``published_train_pairs`` (``None`` for an
        unknown dataset), ``train``/``valid``/``test`` (rows written),
        ``truncated`` (rows whose prefix was cut to ``max_len``), ``files``.
    """
    spec = SESSION_DATASETS.get(name)
    if min_prefix is None:
        if spec is None:
            raise DatasetError(
                f"'{name}' is not one of the known session datasets ({', '.join(SESSION_DATASETS)}), "
                "so its prefix rule is unknown: pass --min_prefix (1 if its test chains go down "
                "to 1-item prefixes, 2 if they stop at 2)."
            )
        min_prefix = spec.min_prefix
    if type(min_prefix) is not int or min_prefix < 1:
        raise DatasetError(f"min_prefix must be an integer >= 1, not {min_prefix!r}.")
    if not 0 < valid_ratio < 1:
        raise DatasetError(f"valid_ratio must lie strictly between 0 and 1, not {valid_ratio!r}.")
    if type(max_len) is not int or max_len < 1:
        raise DatasetError(f"max_len must be an integer >= 1, not {max_len!r}.")
    raw = Path(raw)
    if not raw.is_dir():
        raise DatasetError(
            f"Session dataset folder {raw} does not exist; pass --raw DIR holding {TRAIN_FILE} and {TEST_FILE}."
        )
    missing = [f for f in (TRAIN_FILE, TEST_FILE) if not (raw / f).is_file()]
    if missing:
        raise DatasetError(
            f"{raw} has no {' or '.join(missing)}: a session dataset folder holds the pickles "
            f"{TRAIN_FILE} (training sessions) and {TEST_FILE} (test pairs)."
        )

    sessions = read_train_sessions(raw / TRAIN_FILE)
    prefixes, labels = read_test_pairs(raw / TEST_FILE)
    check_size(raw, sessions, prefixes, max_item_ids)
    _check_item_ids(sessions, raw / TRAIN_FILE, "the training sessions")
    _check_item_ids(prefixes, raw / TEST_FILE, "the test prefixes")
    n_valid = math.ceil(valid_ratio * len(sessions))
    if n_valid >= len(sessions):
        raise DatasetError(
            f"{raw / TRAIN_FILE} has {len(sessions)} sessions: too few to hold out {valid_ratio:.0%} "
            "for validation and still train. Lower --valid_ratio."
        )
    parts = {"train": sessions[:-n_valid], "valid": sessions[-n_valid:]}
    counts = {part: count_pairs(part_sessions, min_prefix, max_len) for part, part_sessions in parts.items()}
    for part, what in (("train", "training"), ("valid", "validation")):
        if not counts[part][0]:
            raise DatasetError(
                f"The {what} set of '{name}' would be empty (sessions shorter than "
                f"min_prefix + 1 = {min_prefix + 1} give no pairs). Check --min_prefix and --valid_ratio."
            )

    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    pairs = {part: prefix_pairs(part_sessions, min_prefix, max_len) for part, part_sessions in parts.items()}
    pairs["test"] = ((prefix[-max_len:], label) for prefix, label in zip(prefixes, labels))
    files, rows = [], {}
    for part, id_prefix in zip(PARTS, ("tr", "va", "te")):
        path = folder / f"{name}.{part}.inter"
        lines = (
            f"{id_prefix}{k}\t{' '.join(map(str, items))}\t{target}\n" for k, (items, target) in enumerate(pairs[part])
        )
        rows[part] = write_atomic_file(path, SESSION_HEADER, lines)
        files.append(path)
    return {
        "sessions": len(sessions),
        "train_pairs": rows["train"] + rows["valid"],
        "published_train_pairs": spec.train_pairs if spec and min_prefix == spec.min_prefix else None,
        **rows,
        "truncated": counts["train"][1] + counts["valid"][1] + sum(len(p) > max_len for p in prefixes),
        "files": files,
    }
