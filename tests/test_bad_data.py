"""Awkward interaction files are filtered or rejected clearly, never a crash
deep inside a model."""

import os
import pickle

import pytest
import torch

from recbole_selfattn import Config, cli
from recbole_selfattn.data import create_dataset, data_preparation
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


# --- Text the checker and RecBole's reader (pandas) would read differently ----------------------


def _check(data, **overrides):
    """Build the dataset ``odd`` (the checks and RecBole's loading, no training)."""
    config = Config("GRU4Rec", "odd", config_dict=tiny_config(data, **overrides), cmd_args=[])
    return create_dataset(config)


def test_a_quote_inside_an_item_id_is_refused_with_its_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = _cyclic_rows()
    rows[3] = 'u0\t"i4\t3\n'  # pandas would read up to the next '"' as one value, merging rows
    rows[40] = 'u3\ti5"\t4\n'
    data = _inter(tmp_path, rows)
    with pytest.raises(DatasetError, match=r"odd\.inter, line 5 holds a '\"' character.*Remove or replace"):
        _check(data)


def test_a_quote_merges_rows_through_the_command_line_no_more(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rows = _cyclic_rows()
    rows[10] = 'u0\ti11"x\t10\n'
    args = [f"--{key}={value}" for key, value in tiny_config(_inter(tmp_path, rows)).items() if key != "load_col"]
    assert cli.main(["--model=GRU4Rec", "--dataset=odd", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "line 12" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "NaN", "12:30", "1e999", "1_000"])
def test_a_non_finite_or_non_numeric_timestamp_is_refused(value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = _cyclic_rows()
    rows[7] = f"u0\ti8\t{value}\n"
    with pytest.raises(DatasetError, match=rf"line 9: timestamp is '{value}', not a finite number"):
        _check(_inter(tmp_path, rows))


def _rated_inter(tmp_path, ratings):
    """``odd.inter`` with a ``rating:float`` column, row ``k`` rated ``ratings(k)``."""
    folder = tmp_path / "data" / "odd"
    folder.mkdir(parents=True)
    rows = [row.rstrip("\n").split("\t") for row in _cyclic_rows()]
    lines = [f"{user}\t{item}\t{ratings(k)}\t{t}\n" for k, (user, item, t) in enumerate(rows)]
    (folder / "odd.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(lines))
    return tmp_path / "data", len(lines)


RATED_COLUMNS = {"inter": ["user_id", "item_id", "rating", "timestamp"]}


def test_a_non_numeric_value_in_any_float_column_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data, _ = _rated_inter(tmp_path, lambda k: "five" if k == 19 else 4)
    with pytest.raises(DatasetError, match="line 21: rating is 'five', not a finite number"):
        _check(data, load_col=RATED_COLUMNS)


def test_an_empty_float_other_than_the_time_field_stays_recboles_missing_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data, n_rows = _rated_inter(tmp_path, lambda k: "" if k == 5 else 4)
    assert len(_check(data, load_col=RATED_COLUMNS).inter_feat) == n_rows


def _latin1_rows():
    return [row.replace("i", "é", 1) for row in _cyclic_rows()]  # item tokens 'é1', 'é2', ...


def test_a_latin1_file_loads_with_the_encoding_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _inter(tmp_path, [])
    path = data / "odd" / "odd.inter"
    path.write_bytes(("user_id:token\titem_id:token\ttimestamp:float\n" + "".join(_latin1_rows())).encode("latin-1"))
    dataset = _check(data, encoding="latin-1")
    assert "é7" in dataset.field2token_id["item_id"] and dataset.item_num == 31


def test_a_file_not_in_the_configured_encoding_names_the_line_and_encoding(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _inter(tmp_path, [])
    rows = _cyclic_rows()
    rows[30] = "u2\té4\t6\n"
    text = "user_id:token\titem_id:token\ttimestamp:float\n" + "".join(rows)
    (data / "odd" / "odd.inter").write_bytes(text.encode("latin-1"))
    with pytest.raises(DatasetError, match=r"line 32 is not valid utf-8 text \(byte 0xe9.*--encoding=latin-1"):
        _check(data)


def test_a_utf8_byte_order_mark_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _inter(tmp_path, _cyclic_rows())
    path = data / "odd" / "odd.inter"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    with pytest.raises(DatasetError, match=r"byte-order mark \(BOM.*save the file as UTF-8 without BOM"):
        _check(data)
    assert _check(data, encoding="utf-8-sig").item_num == 31  # the alternative the message offers


def test_a_duplicated_header_column_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data" / "odd"
    folder.mkdir(parents=True)
    header = "user_id:token\titem_id:token\ttimestamp:float\titem_id:token\n"
    (folder / "odd.inter").write_text(header + "".join(row[:-1] + "\tx\n" for row in _cyclic_rows()))
    with pytest.raises(DatasetError, match="names the column 'item_id' twice"):
        _check(tmp_path / "data", load_col=None)


# --- Too few items for the top-k lists ----------------------------------------------------------


@pytest.mark.parametrize(
    ("n_items", "topk", "valid_metric"), [(1, [10], "MRR@10"), (5, [10], "MRR@10"), (30, [100], "MRR@100")]
)
def test_topk_not_below_the_item_count_fails_before_training(n_items, topk, valid_metric, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write_inter(tmp_path / "data", "odd", cyclic_sequences(n_users=20, n_items=n_items))
    with pytest.raises(DatasetError, match=rf"has {n_items} item\(s\).*top-{topk[0]} lists.*--topk"):
        _run("GRU4Rec", data, topk=topk, valid_metric=valid_metric)
    assert not (tmp_path / "saved").exists() or not any((tmp_path / "saved").glob("GRU4Rec-*.pth"))


def test_topk_just_below_the_item_count_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write_inter(tmp_path / "data", "odd", cyclic_sequences(n_users=20, n_items=5))
    result = _run("GRU4Rec", data, topk=[4], valid_metric="MRR@4")
    assert 0.0 <= result["test_result"]["hit@4"] <= 1.0


# --- RecBole's dataset and dataloader caches are never loaded -----------------------------------


class _Planted:
    """Unpickling this creates the folder ``marker``: proof that a file ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _plant(paths, marker):
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(_Planted(marker)))


@pytest.mark.parametrize("model", ["GRU4Rec", "AttRec"])
@pytest.mark.parametrize("custom_paths", [False, True])
def test_planted_cache_pickles_are_never_unpickled(model, custom_paths, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "code-ran"
    saved = tmp_path / "saved"
    paths = [saved / f"odd-{name}.pth" for name in ("Dataset", "SequentialDataset", f"{model}Dataset")]
    paths.append(saved / f"odd-for-{model}-dataloader.pth")
    overrides = {}
    if custom_paths:
        overrides = {"dataset_save_path": str(tmp_path / "ds.pth"), "dataloaders_save_path": str(tmp_path / "dl.pth")}
        paths += [tmp_path / "ds.pth", tmp_path / "dl.pth"]
    _plant(paths, marker)
    result = _run(model, _inter(tmp_path, _cyclic_rows()), **overrides)
    assert not marker.exists()
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0  # trained from the atomic file


def _tokens(data, **overrides):
    """Item tokens of the training split of ``odd`` under ``data``."""
    config = Config("GRU4Rec", "odd", config_dict=tiny_config(data, **overrides), cmd_args=[])
    train = data_preparation(config, create_dataset(config))[0]
    return set(train._dataset.field2id_token["item_id"][1:])


def test_a_cache_saved_from_another_data_path_is_not_trained_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old = write_inter(tmp_path / "old", "odd", cyclic_sequences(n_users=20, n_items=30))
    new = write_inter(tmp_path / "new", "odd", cyclic_sequences(n_users=20, n_items=25))
    assert _tokens(old, save_dataset=True, save_dataloaders=True) == {f"i{k}" for k in range(1, 31)}
    assert _tokens(new, save_dataset=True, save_dataloaders=True) == {f"i{k}" for k in range(1, 26)}


def test_save_dataset_and_save_dataloaders_write_without_breaking_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run("GRU4Rec", _inter(tmp_path, _cyclic_rows()), save_dataset=True, save_dataloaders=True)
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0
    dataset = pickle.loads((tmp_path / "saved" / "odd-SequentialDataset.pth").read_bytes())
    loaders = pickle.loads((tmp_path / "saved" / "odd-for-GRU4Rec-dataloader.pth").read_bytes())
    assert dataset.item_num == 31 and len(loaders) == 3
    assert all(isinstance(state, torch.Tensor) for _, state in loaders)
