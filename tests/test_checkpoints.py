"""Checkpoints: exact resume, recommendations from a saved model,
reproducibility, distributed training on CPU, and a diverging loss."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recbole_selfattn import recommend
from recbole_selfattn.errors import NonFiniteLossError, UsageError
from recbole_selfattn.quick_start import run
from recbole_selfattn.recommender import Recommender
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[1]


def _run(model, data, **overrides):
    return run(model, "tiny", config_dict=tiny_config(data, **overrides), cmd_args=[])


def test_resume_reaches_the_uninterrupted_result(tiny_data):
    full = _run("GRU4Rec", tiny_data, epochs=4, dropout_prob=0.3)
    first_half = _run("GRU4Rec", tiny_data, epochs=2, dropout_prob=0.3, checkpoint_dir="interrupted")
    resumed = _run(
        "GRU4Rec", tiny_data, epochs=4, dropout_prob=0.3, checkpoint_dir="interrupted", checkpoint=first_half["model_file"]
    )
    assert resumed["model_file"] == first_half["model_file"]  # continues the same file
    assert resumed["test_result"] == full["test_result"]
    assert resumed["best_valid_score"] == full["best_valid_score"]
    assert full["valid_curve"][-len(resumed["valid_curve"]) :] == resumed["valid_curve"]


def test_recommend_top_k_tokens_from_a_saved_model(tiny_data):
    result = _run("GRU4Rec", tiny_data, epochs=8, learning_rate=0.01)
    model_file = result["model_file"]
    top = recommend(model_file, ["i3", "i4", "i5", "i6"], k=5)
    assert len(top) == 5 and len(set(top)) == 5 and all(t.startswith("i") for t in top)
    assert top[0] == "i7"  # the cyclic rule: i -> i+1
    recommender = Recommender(model_file)
    assert recommender.recommend(["i3", "i4", "i5", "i6"], k=5) == top
    assert "i6" not in recommender.recommend(["i3", "i4", "i5", "i6"], k=30, exclude_history=True)
    with pytest.raises(UsageError, match="not in the training data"):
        recommender.recommend(["i3", "nope"])
    with pytest.raises(UsageError, match="No checkpoint"):
        recommend("missing.pth", ["i3"])


@pytest.mark.parametrize("model", ["AttRec", "MTAW", "MIND"])
def test_same_seed_same_metrics(model, tiny_data):
    first = _run(model, tiny_data, epochs=2)
    second = _run(model, tiny_data, epochs=2, checkpoint_dir="second")
    assert first["test_result"] == second["test_result"]
    assert first["valid_curve"] == second["valid_curve"]


def test_nan_loss_stops_with_epoch_and_batch(tiny_data, monkeypatch):
    from recbole.model.sequential_recommender import GRU4Rec

    calls = []
    original = GRU4Rec.calculate_loss

    def diverging(self, interaction):
        calls.append(1)
        loss = original(self, interaction)
        return loss * torch.nan if len(calls) == 3 else loss

    monkeypatch.setattr(GRU4Rec, "calculate_loss", diverging)
    with pytest.raises(NonFiniteLossError, match="loss is nan at epoch 0, batch 2"):
        _run("GRU4Rec", tiny_data, epochs=2, train_batch_size=32)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("model", ["GRU4Rec", "AttRec", "MTAW", "MIND"])
def test_two_process_ddp_on_cpu(model, tiny_data):
    args = [f"--{k}={v}" for k, v in tiny_config(tiny_data, epochs=1).items() if k != "load_col"]
    proc = subprocess.run(
        [sys.executable, str(REPO / "run.py"), f"--model={model}", "--dataset=tiny", "--nproc=2",
         f"--port={_free_port()}", *args],
        capture_output=True, text=True, cwd=tiny_data.parent, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]  # mp.spawn fails unless both ranks exit cleanly
    assert proc.stdout.count("test result: ") == 1  # reported once, by rank 0
