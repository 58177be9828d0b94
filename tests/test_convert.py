"""The dataset converters: ml-1m to an atomic file, session pickles to RecBole
benchmark files, the restricted unpickler and the command line.

Every fixture is written here in the raw formats; the shared datasets are
never needed."""

import lzma
import os
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from recbole_selfattn.data import convert
from recbole_selfattn.data.session import MAX_ITEM_IDS, SESSION_HEADER, convert_session, load_pickle
from recbole_selfattn.errors import DatasetError

REPO = Path(__file__).resolve().parents[1]
RAW_ROWS = "1::1193::5::978300760\n1::661::3::978302109\n2::1357::4::978298709\n"
ATOMIC = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "1\t1193\t5\t978300760\n"
    "1\t661\t3\t978302109\n"
    "2\t1357\t4\t978298709\n"
)


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".xz":
        with lzma.open(path, "wt", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def _leftovers(folder):
    return [p.name for p in folder.iterdir()] if folder.is_dir() else []


# ---------------------------------------------------------------- ml-1m


@pytest.mark.parametrize(
    "name, text",
    [
        ("ratings.dat", RAW_ROWS),
        ("ratings.dat.xz", RAW_ROWS),
        ("ratings.dat", RAW_ROWS.replace("\n", "\r\n")),  # CRLF copies of the GroupLens file
        ("ml-1m.inter", ATOMIC),
        ("ml-1m.inter.xz", ATOMIC),
    ],
)
def test_ml1m_writes_the_atomic_rows(tmp_path, name, text):
    _write(tmp_path / "raw" / name, text)
    result = convert.convert_ml1m(tmp_path / "raw", tmp_path / "out")
    target = tmp_path / "out" / "ml-1m" / "ml-1m.inter"
    assert result == {"source": tmp_path / "raw" / name, "rows": 3, "file": target}
    assert target.read_text(encoding="utf-8") == ATOMIC
    assert _leftovers(target.parent) == ["ml-1m.inter"]


def test_ml1m_prefers_the_raw_ratings_over_an_atomic_copy(tmp_path):
    _write(tmp_path / "raw" / "ratings.dat.xz", RAW_ROWS)
    _write(tmp_path / "raw" / "ml-1m.inter", ATOMIC.replace("1193", "9999"))
    assert convert.convert_ml1m(tmp_path / "raw", tmp_path / "out")["source"].name == "ratings.dat.xz"
    assert (tmp_path / "out" / "ml-1m" / "ml-1m.inter").read_text() == ATOMIC


@pytest.mark.parametrize(
    "bad_line",
    [
        "3,1193,5,978300760",  # wrong separator
        "3::1193::5",  # a column missing
        "3::1193::5::978300760::x",  # a column too many
        "3::1193::4.5::978300760",  # non-integer rating
        "3::abc::5::978300760",  # non-integer item
        "3::1193::-1::978300760",  # a sign is not an id or a rating
    ],
)
def test_ml1m_malformed_line_is_named(tmp_path, bad_line):
    raw = _write(tmp_path / "raw" / "ratings.dat.xz", RAW_ROWS + bad_line + "\n" + RAW_ROWS)
    with pytest.raises(DatasetError) as info:
        convert.convert_ml1m(tmp_path / "raw", tmp_path / "out")
    message = str(info.value)
    assert f"{raw}, line 4:" in message and bad_line in message and "UserID::MovieID::Rating::Timestamp" in message
    assert "\n" not in message
    assert _leftovers(tmp_path / "out" / "ml-1m") == []  # no half-written file


def test_ml1m_atomic_copy_with_a_wrong_header_is_refused(tmp_path):
    _write(tmp_path / "raw" / "ml-1m.inter", ATOMIC.replace("rating:float", "rating:token"))
    with pytest.raises(DatasetError, match=r"ml-1m.inter, line 1: the header is .*rating:token"):
        convert.convert_ml1m(tmp_path / "raw", tmp_path / "out")


def test_ml1m_empty_or_unreadable_source_is_refused(tmp_path):
    _write(tmp_path / "empty" / "ratings.dat", "\n")
    with pytest.raises(DatasetError, match="has no rating rows"):
        convert.convert_ml1m(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "ratings.dat.xz").write_bytes(b"not xz data")
    with pytest.raises(DatasetError, match=r"Cannot read .*ratings.dat.xz"):
        convert.convert_ml1m(tmp_path / "broken", tmp_path / "out")


def test_ml1m_folder_without_ratings_is_refused(tmp_path):
    (tmp_path / "raw").mkdir()
    _write(tmp_path / "raw" / "movies.dat", "1::Toy Story (1995)::Animation\n")
    with pytest.raises(DatasetError, match="holds none of ratings.dat, ratings.dat.xz, ml-1m.inter, ml-1m.inter.xz"):
        convert.convert_ml1m(tmp_path / "raw", tmp_path / "out")


# ---------------------------------------------------------------- sessions


def _session_raw(folder, sessions, prefixes, labels):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "all_train_seq.txt").write_bytes(pickle.dumps(sessions, protocol=3))
    (folder / "test.txt").write_bytes(pickle.dumps((prefixes, labels), protocol=3))
    return folder


def _rows(path):
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[0] == SESSION_HEADER
    return [tuple(line.rstrip("\n").split("\t")) for line in lines[1:]]


def _files(out, name):
    return [out / name / f"{name}.{part}.inter" for part in ("train", "valid", "test")]


def test_session_pairs_are_every_prefix_longest_first(tmp_path):
    raw = _session_raw(tmp_path / "raw", [[1, 2, 3, 4], [5, 6], [7, 8, 9]], [[3, 1], [9]], [2, 4])
    # 3 sessions, valid_ratio 0.3 -> ceil(0.9) = 1 session (the last) held out.
    result = convert_session("tmall", raw, tmp_path / "out", valid_ratio=0.3)
    train, valid, test = _files(tmp_path / "out", "tmall")
    assert _rows(train) == [("tr0", "1 2 3", "4"), ("tr1", "1 2", "3"), ("tr2", "1", "2"), ("tr3", "5", "6")]
    assert _rows(valid) == [("va0", "7 8", "9"), ("va1", "7", "8")]
    assert _rows(test) == [("te0", "3 1", "2"), ("te1", "9", "4")]
    assert result["sessions"] == 3 and result["train_pairs"] == 6
    assert (result["train"], result["valid"], result["test"], result["truncated"]) == (4, 2, 2, 0)
    assert result["files"] == [train, valid, test]


def test_retailrocket_rule_stops_at_two_item_prefixes(tmp_path):
    raw = _session_raw(tmp_path / "raw", [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10]], [[3, 1]], [2])
    result = convert_session("retailrocket", raw, tmp_path / "out", valid_ratio=0.3)
    train, valid, _ = _files(tmp_path / "out", "retailrocket")
    assert _rows(train) == [("tr0", "1 2 3", "4"), ("tr1", "1 2", "3"), ("tr2", "5 6", "7")]
    assert _rows(valid) == [("va0", "8 9", "10")]
    assert result["train_pairs"] == 4
    # The rule is a setting: min_prefix=1 on the same data gives the 1-item prefixes too.
    convert_session("retailrocket", raw, tmp_path / "out1", valid_ratio=0.3, min_prefix=1)
    assert [r[1] for r in _rows(_files(tmp_path / "out1", "retailrocket")[0])] == ["1 2 3", "1 2", "1", "5 6", "5"]


def test_prefixes_keep_their_most_recent_items(tmp_path):
    raw = _session_raw(tmp_path / "raw", [[1, 2, 3, 4, 5], [6, 7]], [[9, 8, 7, 6]], [5])
    result = convert_session("diginetica", raw, tmp_path / "out", valid_ratio=0.5, max_len=2)
    train, valid, test = _files(tmp_path / "out", "diginetica")
    assert [r[1:] for r in _rows(train)] == [("3 4", "5"), ("2 3", "4"), ("1 2", "3"), ("1", "2")]
    assert _rows(test) == [("te0", "7 6", "5")]
    assert result["truncated"] == 3


def test_validation_holds_out_whole_sessions_and_ids_are_unique(tmp_path):
    sessions = [[s, s + 1, s + 2] for s in range(1, 21)]  # 20 sessions, 2 pairs each
    raw = _session_raw(tmp_path / "raw", sessions, [[1, 2], [3]], [3, 4])
    result = convert_session("tmall", raw, tmp_path / "out", valid_ratio=0.25)
    train, valid, test = (_rows(p) for p in _files(tmp_path / "out", "tmall"))
    assert (len(train), len(valid), len(test)) == (30, 10, 2) == (result["train"], result["valid"], result["test"])
    # The last 5 sessions (first items 16..20) and only they are in validation.
    assert {int(r[1].split()[0]) for r in valid} == set(range(16, 21))
    assert {int(r[1].split()[0]) for r in train} == set(range(1, 16))
    ids = [r[0] for r in train + valid + test]
    assert len(set(ids)) == len(ids) == 42


@pytest.mark.parametrize("ratio", [0, 1, -0.1, 1.5])
def test_valid_ratio_must_lie_strictly_between_0_and_1(tmp_path, ratio):
    raw = _session_raw(tmp_path / "raw", [[1, 2], [3, 4]], [[1]], [2])
    with pytest.raises(DatasetError, match="valid_ratio must lie strictly between 0 and 1"):
        convert_session("tmall", raw, tmp_path / "out", valid_ratio=ratio)


def test_too_few_sessions_or_pairs_for_the_split_are_refused(tmp_path):
    raw = _session_raw(tmp_path / "one", [[1, 2, 3]], [[1]], [2])
    with pytest.raises(DatasetError, match="too few to hold out"):
        convert_session("tmall", raw, tmp_path / "out")
    raw = _session_raw(tmp_path / "short", [[1, 2, 3], [4, 5]], [[1, 2]], [3])
    with pytest.raises(DatasetError, match="validation set of 'retailrocket' would be empty"):
        convert_session("retailrocket", raw, tmp_path / "out", valid_ratio=0.5)
    assert not (tmp_path / "out").exists()


def test_unknown_session_dataset_needs_its_prefix_rule(tmp_path):
    raw = _session_raw(tmp_path / "raw", [[1, 2, 3], [4, 5]], [[1]], [2])
    with pytest.raises(DatasetError, match="pass --min_prefix"):
        convert_session("mine", raw, tmp_path / "out")
    result = convert_session("mine", raw, tmp_path / "out", valid_ratio=0.5, min_prefix=1)
    assert result["published_train_pairs"] is None and result["train_pairs"] == 3


# ---------------------------------------------------------------- restricted unpickler


class _Custom:
    pass


class _RunsCode:
    """Unpickling this with plain pickle.load would create a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize(
    "payload",
    [
        lambda tmp: os.system,
        lambda tmp: _Custom(),
        lambda tmp: [[1, 2], _Custom()],
        lambda tmp: [[1, 2, _RunsCode(str(tmp / "marker"))]],
    ],
    ids=["function", "class instance", "nested instance", "reduce payload"],
)
def test_pickles_with_globals_are_refused_without_running_them(tmp_path, payload):
    path = tmp_path / "all_train_seq.txt"
    path.write_bytes(pickle.dumps(payload(tmp_path), protocol=3))
    with pytest.raises(DatasetError, match="refers to the Python global") as info:
        load_pickle(path)
    assert str(path) in str(info.value)
    assert not (tmp_path / "marker").exists()
    # The same bytes through the converter: the same refusal.
    (tmp_path / "test.txt").write_bytes(pickle.dumps(([[1]], [2])))
    with pytest.raises(DatasetError, match="refers to the Python global"):
        convert_session("tmall", tmp_path, tmp_path / "out")
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize(
    "sessions, test, expected",
    [
        ({1: [1, 2]}, ([[1]], [2]), "training sessions must be a list of item-id lists, not dict"),
        ([[1.0, 2.0]], ([[1]], [2]), "holds 1.0; item ids must be ints >= 1"),
        ([[1, True]], ([[1]], [2]), "holds True; item ids must be ints >= 1"),
        ([[1, 0]], ([[1]], [2]), "holds 0; item ids must be ints >= 1"),
        ([[1, 2], []], ([[1]], [2]), "entry 1 must be a non-empty list of item ids"),
        ([[1, 2], "ab"], ([[1]], [2]), "entry 1 must be a non-empty list of item ids"),
        ([[1, 2]], [[1], [2]], "the test prefixes entry 0 must be a non-empty list of item ids"),
        ([[1, 2]], {"prefixes": [[1]]}, "must hold a pair (prefixes, labels)"),
        ([[1, 2]], ([[1]], [2], [3]), "must hold a pair (prefixes, labels)"),
        ([[1, 2]], ([[1], [2]], [2]), "has 2 test prefixes but 1 labels"),
        ([[1, 2]], ([[1]], [2.5]), "test labels must be a list of item ids"),
        ([[1, 2]], ([], []), "holds no test pairs"),
    ],
)
def test_wrong_structure_is_refused(tmp_path, sessions, test, expected):
    (tmp_path / "all_train_seq.txt").write_bytes(pickle.dumps(sessions, protocol=3))
    (tmp_path / "test.txt").write_bytes(pickle.dumps(test, protocol=3))
    with pytest.raises(DatasetError) as info:
        convert_session("tmall", tmp_path, tmp_path / "out", valid_ratio=0.5)
    assert expected in str(info.value)
    assert not (tmp_path / "out").exists()


def test_truncated_or_non_pickle_file_is_refused(tmp_path):
    path = tmp_path / "all_train_seq.txt"
    path.write_bytes(pickle.dumps([[1, 2, 3]] * 10, protocol=3)[:-5])
    with pytest.raises(DatasetError, match="is not a pickle of plain lists of item ids"):
        load_pickle(path)
    path.write_text("1 2 3\n4 5\n")
    with pytest.raises(DatasetError, match="is not a pickle of plain lists of item ids"):
        load_pickle(path)


def test_tuples_are_accepted_like_lists(tmp_path):
    raw = _session_raw(tmp_path / "raw", ((1, 2, 3), (4, 5)), ((7, 8),), (9,))
    convert_session("tmall", raw, tmp_path / "out", valid_ratio=0.5)
    assert _rows(_files(tmp_path / "out", "tmall")[2]) == [("te0", "7 8", "9")]


# ---------------------------------------------------------------- size bounds


def test_one_very_long_session_converts_in_memory_linear_in_its_length(tmp_path):
    length = 4_000  # every prefix built in full would hold 8 million item references (~64 MB)
    raw = _session_raw(tmp_path / "raw", [list(range(1, length + 1)), [1, 2]], [list(range(1, 301))], [7])
    tracemalloc.start()
    try:
        result = convert_session("tmall", raw, tmp_path / "out", valid_ratio=0.5, max_len=50)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20
    train, _, test = (_rows(path) for path in _files(tmp_path / "out", "tmall"))
    assert len(train) == result["train"] == length - 1
    assert train[0] == ("tr0", " ".join(map(str, range(length - 50, length))), str(length))
    assert train[-1] == (f"tr{length - 2}", "1", "2")
    assert max(len(row[1].split()) for row in train) == 50
    assert test == [("te0", " ".join(map(str, range(251, 301))), "7")]
    assert result["truncated"] == (length - 1 - 50) + 1  # training prefixes of 51..3999 items, the test prefix


def test_input_over_the_item_id_limit_is_refused_before_writing(tmp_path, capsys):
    raw = _session_raw(tmp_path / "raw", [list(range(1, 31)), [1, 2]], [[1, 2, 3]], [4])
    with pytest.raises(DatasetError, match=r"holds 35 item ids .* limit of 34 .*--max_item_ids"):
        convert_session("tmall", raw, tmp_path / "out", valid_ratio=0.5, max_item_ids=34)
    assert not (tmp_path / "out").exists()
    assert convert_session("tmall", raw, tmp_path / "out", valid_ratio=0.5, max_item_ids=35)["train"] == 29
    args = ["session", "--name", "tmall", "--raw", str(raw), "--out", str(tmp_path / "cli"), "--max_item_ids", "34"]
    assert convert.main(args) == 2
    assert "more than the converter's limit of 34" in _one_paragraph_error(capsys)


def test_a_small_pickle_of_shared_sessions_is_refused_by_default(tmp_path):
    session = list(range(1, 10_001))
    raw = _session_raw(tmp_path / "raw", [session] * 600 + [[1, 2]], [[1]], [2])  # ~50 KB: 6 million ids
    assert (raw / "all_train_seq.txt").stat().st_size < 100_000
    with pytest.raises(DatasetError, match=f"limit of {MAX_ITEM_IDS:,}"):
        convert_session("tmall", raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- command line


def _one_paragraph_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_cli_converts_both_kinds(tmp_path, capsys):
    _write(tmp_path / "ml" / "ratings.dat.xz", RAW_ROWS)
    assert convert.main(["ml-1m", "--raw", str(tmp_path / "ml"), "--out", str(tmp_path / "out")]) == 0
    assert "3 ratings" in capsys.readouterr().out
    raw = _session_raw(tmp_path / "s", [[1, 2, 3], [4, 5, 6]], [[1]], [2])
    args = ["session", "--name", "retailrocket", "--raw", str(raw), "--out", str(tmp_path / "out"), "--valid_ratio", "0.5"]
    assert convert.main(args) == 0
    out = capsys.readouterr().out
    assert "2 training sessions -> 2 training pairs (published: 433,648)" in out and "valid 1" in out
    assert all(p.is_file() for p in _files(tmp_path / "out", "retailrocket"))


def test_cli_wrong_folder_exits_2_with_one_paragraph(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert convert.main(["ml-1m", "--raw", str(missing), "--out", str(tmp_path / "out")]) == 2
    assert f"MovieLens-1M folder {missing} does not exist" in _one_paragraph_error(capsys)
    (tmp_path / "empty").mkdir()
    assert convert.main(["session", "--name", "tmall", "--raw", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
    assert "has no all_train_seq.txt or test.txt" in _one_paragraph_error(capsys)
    assert convert.main(["session", "--name", "tmall", "--raw", str(missing), "--out", str(tmp_path)]) == 2
    assert f"Session dataset folder {missing} does not exist" in _one_paragraph_error(capsys)


def test_module_runs_as_a_script(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "recbole_selfattn.data.convert", "ml-1m", "--raw", str(tmp_path / "none"), "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: MovieLens-1M folder") and proc.stdout == ""
