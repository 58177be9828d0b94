"""Awkward interaction files are filtered or rejected clearly, never a crash
deep inside a model."""

import pytest

from recbole_selfattn.errors import DatasetError
from recbole_selfattn.quick_start import run
from tests.conftest import cyclic_sequences, tiny_config, write_inter

MODELS = ["GRU4Rec", "AttRec", "MTAW", "MIND"]


def _inter(tmp_path, rows):
    folder = tmp_path / "data" / "odd"
    folder.mkdir(parents=True)
    (folder / "odd.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "".join(rows))
    return tmp_path / "data"


def _cyclic_rows():
    return [f"u{u}\ti{i}\t{t}\n" for u, seq in enumerate(cyclic_sequences(n_users=20)) for t, i in enumerate(seq)]


def _run(model, data, **overrides):
    return run(model, "odd", config_dict=tiny_config(data, epochs=1, **overrides), cmd_args=[])


@pytest.mark.parametrize("model", MODELS)
def test_duplicates_single_interaction_users_and_short_histories(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = _cyclic_rows()
    rows += rows[:5]  # duplicate rows
    rows += ["lonely\ti1\t0\n"]  # a user with a single interaction: no sample at all
    rows += ["pair\ti1\t0\n", "pair\ti2\t1\n"]  # a test sample only
    rows += ["trio\ti1\t0\n", "trio\ti2\t1\n", "trio\ti3\t2\n"]  # history of length 1
    result = _run(model, _inter(tmp_path, rows))
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0


def _item_file(data, items):
    (data / "odd" / "odd.item").write_text("item_id:token\tgenre:token\n" + "".join(f"i{i}\tg\n" for i in items))
    return {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "genre"]}


@pytest.mark.parametrize("model", MODELS)
def test_interactions_with_items_unknown_to_the_item_file_are_filtered(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _inter(tmp_path, _cyclic_rows())
    result = _run(model, data, load_col=_item_file(data, range(1, 26)))  # items 26..30 unknown
    assert 0.0 <= result["test_result"]["hit@20"] <= 1.0


def test_filtering_away_every_sequence_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _inter(tmp_path, _cyclic_rows())
    with pytest.raises(DatasetError, match="no user has at least 3 interactions"):
        _run("GRU4Rec", data, load_col=_item_file(data, [1, 2]))  # else: empty metrics, silently


def test_rows_with_an_empty_item_token_are_rejected(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _inter(tmp_path, _cyclic_rows() + ["u1\t\t99\n"])
    with pytest.raises(DatasetError, match=r"line \d+: empty item_id"):
        _run("GRU4Rec", data)


def test_no_trainable_sequence_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _inter(tmp_path, [f"u{u}\ti{u}\t0\n" for u in range(10)])  # one interaction per user
    with pytest.raises(DatasetError, match="no user has at least 3 interactions"):
        _run("GRU4Rec", data)


def test_generated_fixture_is_what_the_models_see(tmp_path):
    write_inter(tmp_path, "x", [[1, 2, 3]])
    assert (tmp_path / "x" / "x.inter").read_text().splitlines()[1:] == ["u0\ti1\t0", "u0\ti2\t1", "u0\ti3\t2"]
