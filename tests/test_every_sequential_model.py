"""Every sequential model RecBole ships runs through ``run.py`` on tiny data,
one epoch each, with the negatives, labels and protocol it needs
(:mod:`recbole_selfattn.protocol`); the two that need knowledge-graph files
fail with one paragraph saying so."""

import pytest

from recbole_selfattn import cli
from recbole_selfattn.utils import sequential_model_names
from tests.conftest import cli_args, cyclic_sequences, one_paragraph_error, write_inter, write_item_classes

# Models reading pretrained entity embeddings (<dataset>.ent): no such file here.
NEEDS_KNOWLEDGE_GRAPH = ("GRU4RecKG", "KSR")

# Tiny-data settings only: FEARec splits its frequency bands over n_layers - 1
# layers (n_layers >= 2), the CPR models re-rank reranker_CAN_NUM candidates
# (fewer than the 30 items), DIN/DIEN rank the target among sampled items
# with smaller MLPs, NextItNet stacks fewer blocks.
SAMPLED_EVALUATION = {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni10"}
SIZE_FOR_TINY_DATA = {
    "FEARec": {"n_layers": 2},
    "GRU4RecCPR": {"reranker_CAN_NUM": 10},
    "SASRecCPR": {"reranker_CAN_NUM": 10},
    "DIN": {"eval_args": SAMPLED_EVALUATION, "mlp_hidden_size": [8]},
    "DIEN": {"eval_args": SAMPLED_EVALUATION, "mlp_hidden_size": [8]},
    "NextItNet": {"block_num": 1, "cpu_onednn": True},  # oneDNN: only Caser needs it off
}
ITEM_FEATURES = "--load_col={'inter': ['user_id', 'item_id', 'timestamp'], 'item': ['item_id', 'class']}"


@pytest.fixture(scope="module")
def tiny_with_item_features(tmp_path_factory):
    """The cyclic ``tiny`` dataset plus a ``.item`` file with a ``class`` feature."""
    folder = tmp_path_factory.mktemp("every-model")
    write_inter(folder / "data", "tiny", cyclic_sequences())
    write_item_classes(folder / "data", "tiny")
    return folder


@pytest.mark.parametrize("model", sequential_model_names()[1])
def test_model_runs_one_epoch_through_run_py(model, tiny_with_item_features, capsys, monkeypatch):
    monkeypatch.chdir(tiny_with_item_features)
    sizes = {"embedding_size": 8, "hidden_size": 8, "inner_size": 16, **SIZE_FOR_TINY_DATA.get(model, {})}
    args = [f"--model={model}", "--dataset=tiny", *cli_args(tiny_with_item_features / "data", **sizes)]
    if model in ("FDSA", "GRU4RecF", "SASRecF", "S3Rec"):
        args.append(ITEM_FEATURES)
    status = cli.main(args)
    if model in NEEDS_KNOWLEDGE_GRAPH:
        assert status == 2
        err = one_paragraph_error(capsys)
        assert f"{model} reads pretrained embeddings" in err and "tiny.ent" in err
        return
    out = capsys.readouterr().out
    assert status == 0
    metric = "auc" if model in ("DIN", "DIEN") else "ndcg@10"
    assert "test result" in out and metric in out.lower()
