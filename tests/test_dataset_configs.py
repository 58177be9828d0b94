"""The dataset and benchmark property files, end to end through RecBole.

* the session datasets' YAML + converted benchmark files train SASRec and
  evaluate exactly the given test pairs;
* ml-1m's YAML reproduces RecBole's benchmark filtering on the real file
  (skipped when ``../shared/datasets/ml-1m`` is absent; set
  ``RECBOLE_SELFATTN_DATASETS`` to use another datasets folder);
* the benchmark protocol files load through the plugin's Config.
"""

import os
import pickle
from pathlib import Path

import pytest

from recbole_selfattn import quick_start
from recbole_selfattn.config import Config, properties_dir
from recbole_selfattn.data import create_dataset
from recbole_selfattn.data.convert import convert_ml1m
from recbole_selfattn.data.session import convert_session
from recbole_selfattn.errors import DatasetError
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("RECBOLE_SELFATTN_DATASETS", REPO.parent / "shared" / "datasets"))
SHARED_ML1M = SHARED_DATASETS / "ml-1m"


def _session_config(data_path, **overrides):
    """The tiny config without the keys the dataset YAML must supply."""
    config = tiny_config(data_path)
    for key in ("load_col", "MAX_ITEM_LIST_LENGTH"):
        config.pop(key)
    config.update(overrides)
    return config


def _ring_sessions(n_sessions, n_items=40):
    """Sessions walking an item ring (item i then i+1), lengths 3..8."""
    return [[(s + t) % n_items + 1 for t in range(3 + s % 6)] for s in range(n_sessions)]


@pytest.mark.parametrize("name", ["tmall", "retailrocket", "diginetica"])
def test_session_yaml_trains_sasrec_and_evaluates_every_test_pair(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "raw"
    raw.mkdir()
    prefixes = [seq[:-1] for seq in _ring_sessions(23)][::-1]  # 23 test pairs, prefix lengths 2..7
    labels = [seq[-1] % 40 + 1 for seq in prefixes]
    (raw / "all_train_seq.txt").write_bytes(pickle.dumps(_ring_sessions(50), protocol=3))
    (raw / "test.txt").write_bytes(pickle.dumps((prefixes, labels), protocol=3))
    counts = convert_session(name, raw, tmp_path / "data")

    loaders = {}

    def spy(config, dataset):
        loaders["train"], loaders["valid"], loaders["test"] = quick_start_data_preparation(config, dataset)
        return loaders["train"], loaders["valid"], loaders["test"]

    quick_start_data_preparation = quick_start.data_preparation
    monkeypatch.setattr(quick_start, "data_preparation", spy)
    result = quick_start.run("SASRec", name, config_dict=_session_config(tmp_path / "data"), cmd_args=[])

    config = result["config"]
    assert config["USER_ID_FIELD"] == "session_id" and config["MAX_ITEM_LIST_LENGTH"] == 50
    assert config["benchmark_filename"] == ["train", "valid", "test"]
    assert set(result["test_result"]) == set(result["best_valid_result"]) == {"hit@10", "hit@20", "mrr@10", "mrr@20"}
    for part in ("train", "valid", "test"):
        assert len(loaders[part]._dataset) == counts[part]

    # The test loader yields every given pair once, in order, prefix and target intact.
    test_data = loaders["test"]
    dataset = test_data._dataset
    seen_prefixes, seen_labels = [], []
    for interaction, *_ in test_data:
        seen_labels += [int(t) for t in dataset.id2token("item_id", interaction["item_id"])]
        for row, length in zip(interaction["item_id_list"], interaction["item_length"]):
            assert (row[length:] == 0).all()
            seen_prefixes.append([int(t) for t in dataset.id2token("item_id", row[:length])])
    assert seen_labels == labels and seen_prefixes == prefixes
    assert interaction["item_id_list"].shape[1] == 50  # padded to MAX_ITEM_LIST_LENGTH, not the longest prefix


def test_session_lists_fit_models_that_span_the_whole_window(tmp_path, monkeypatch):
    """Caser's vertical kernel covers MAX_ITEM_LIST_LENGTH positions: prefixes
    (here at most 7 items) must come padded to that length. (``tiny_config``
    sets ``cpu_onednn: False``: oneDNN's convolution backward intermittently
    gives Caser NaN gradients, see ``properties/overall.yaml``.)"""
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "all_train_seq.txt").write_bytes(pickle.dumps(_ring_sessions(50), protocol=3))
    (raw / "test.txt").write_bytes(pickle.dumps(([[1, 2], [3, 4, 5]], [3, 6]), protocol=3))
    convert_session("tmall", raw, tmp_path / "data")
    result = quick_start.run("Caser", "tmall", config_dict=_session_config(tmp_path / "data"), cmd_args=[])
    assert set(result["test_result"]) == {"hit@10", "hit@20", "mrr@10", "mrr@20"}


def test_session_yaml_rejects_sequences_longer_than_max_item_list_length(tmp_path, monkeypatch):
    """RecBole keeps benchmark-file sequences as written; one longer than
    MAX_ITEM_LIST_LENGTH would index past SASRec's position embeddings."""
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "all_train_seq.txt").write_bytes(pickle.dumps([[s, s + 1, s + 2] for s in range(1, 21)], protocol=3))
    (raw / "test.txt").write_bytes(pickle.dumps(([[1, 2], [1, 2, 3, 4, 5, 6]], [3, 7]), protocol=3))
    convert_session("tmall", raw, tmp_path / "data", max_len=6)
    expected = "tmall.test.inter, line 3: item_id_list holds 6 values, more than MAX_ITEM_LIST_LENGTH=4"
    with pytest.raises(DatasetError, match=expected):
        quick_start.run("SASRec", "tmall", config_dict=_session_config(tmp_path / "data", MAX_ITEM_LIST_LENGTH=4), cmd_args=[])


@pytest.mark.skipif(not SHARED_ML1M.is_dir(), reason=f"the shared ml-1m dataset ({SHARED_ML1M}) is absent")
def test_ml1m_yaml_reproduces_recbole_benchmark_counts(tmp_path, monkeypatch):
    """ratings >= 3, then 10-core users and items: 834,449 interactions of
    6,033 users on 3,123 items. RecBole counts the padding id in ``user_num``
    and ``item_num`` (6,034 and 3,124; its published "3,124 items" is that
    count). The published "6,040 users" is the raw count: 7 users fall below
    10 interactions, and one of them has no rating >= 3 at all."""
    monkeypatch.chdir(tmp_path)
    convert_ml1m(SHARED_ML1M, tmp_path / "data")
    config = Config("SASRec", "ml-1m", config_dict=_session_config(tmp_path / "data"), cmd_args=[])
    assert config["val_interval"] == {"rating": "[3,inf)"}
    dataset = create_dataset(config)
    assert dataset.inter_num == 834_449
    assert (dataset.user_num, dataset.item_num) == (6_034, 3_124)
    assert dataset.inter_feat["user_id"].nunique() == 6_033
    assert dataset.inter_feat["item_id"].nunique() == 3_123
    assert dataset.inter_feat["rating"].min() >= 3


def test_benchmark_protocol_files_load_and_win_over_the_defaults():
    benchmark = properties_dir() / "benchmark"
    ml1m = Config("SASRec", "ml-1m", config_file_list=[str(benchmark / "ml-1m.yaml")], cmd_args=[])
    expected = {
        "MAX_ITEM_LIST_LENGTH": 50, "embedding_size": 64, "hidden_size": 64, "train_batch_size": 4096,
        "valid_metric": "NDCG@10", "topk": [5, 10, 20],
    }
    assert {key: ml1m[key] for key in expected} == expected
    assert ml1m["train_neg_sample_args"]["distribution"] == "none"  # RecBole's spelling of `~`
    assert ml1m["eval_args"]["split"] == {"LS": "valid_and_test"} and ml1m["eval_args"]["order"] == "TO"
    assert ml1m["user_inter_num_interval"] == "[10,inf)"  # the dataset YAML still applies
    attrec = Config("AttRec", "ml-1m", config_file_list=[str(benchmark / "ml-1m.yaml"),
                                                         str(benchmark / "ml-1m" / "AttRec.yaml")], cmd_args=[])
    assert (attrec["T"], attrec["L"], attrec["omega"]) == (1, 5, 0.2)  # T chosen on ml-1m validation
    session = Config("SASRec", "tmall", config_file_list=[str(benchmark / "session.yaml")], cmd_args=[])
    assert (session["metrics"], session["topk"], session["valid_metric"]) == (["Hit", "MRR"], [10, 20], "MRR@20")
    assert session["embedding_size"] == session["hidden_size"] == 100
    assert session["benchmark_filename"] == ["train", "valid", "test"]
    mtaw = Config("MTAW", "tmall", config_file_list=[str(benchmark / "session.yaml"),
                                                    str(benchmark / "session" / "MTAW.yaml")], cmd_args=[])
    assert mtaw["scale"] == 16 and mtaw["embedding_size"] == 100  # tau chosen on Tmall validation


@pytest.mark.parametrize("cpu_onednn", [True, False])
def test_cpu_onednn_sets_the_convolution_backend_for_the_run_only(cpu_onednn, tiny_data, monkeypatch):
    """``cpu_onednn`` decides whether training convolves with oneDNN on the
    CPU (RecBole's Caser builds its filters with ``nn.Conv2d``); the process's
    own setting is back once the run ends."""
    import torch
    from recbole.model.sequential_recommender import Caser

    seen = []
    original = Caser.calculate_loss

    def recording(self, interaction):
        seen.append(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)
        return original(self, interaction)

    monkeypatch.setattr(Caser, "calculate_loss", recording)
    before = torch.backends.mkldnn.enabled
    quick_start.run("Caser", "tiny", config_dict=tiny_config(tiny_data, cpu_onednn=cpu_onednn), cmd_args=[])
    assert seen and set(seen) == {cpu_onednn and torch.backends.mkldnn.is_available()}
    assert torch.backends.mkldnn.enabled == before
