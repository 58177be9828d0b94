"""MIND diagnostics (recbole_selfattn.diagnostics.mind): the measures on
hand-built interests and weights, and the command on a tiny trained checkpoint."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recbole_selfattn import checkpoint
from recbole_selfattn.diagnostics import mind as diagnostics
from recbole_selfattn.quick_start import run
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[1]
E1, E2 = [1.0, 0.0], [0.0, 1.0]
JUNK = [5.0, -3.0]  # an invalid interest that would change any figure it entered


def test_interest_diversity_known_values():
    interests = torch.tensor(
        [
            [E1, E1, JUNK],  # two identical valid interests: cosine 1
            [E1, E2, JUNK],  # orthogonal: 0
            [E1, JUNK, JUNK],  # one valid interest: no pair, excluded
            [E1, [2.0, 0.0], [-3.0, 0.0]],  # pairs 1, -1, -1: -1/3 (length does not matter)
        ]
    )
    n_valid = torch.tensor([2, 2, 1, 3])
    measure = diagnostics.interest_diversity
    assert measure(interests[:1], n_valid[:1]) == pytest.approx(1.0)
    assert measure(interests[1:2], n_valid[1:2]) == pytest.approx(0.0)
    assert measure(interests[3:], n_valid[3:]) == pytest.approx(-1 / 3)
    assert measure(interests, n_valid) == pytest.approx((1 + 0 - 1 / 3) / 3)
    assert math.isnan(measure(interests[2:3], n_valid[2:3]))


def test_attention_entropy_known_values():
    weights = torch.tensor(
        [
            [0.25, 0.25, 0.25, 0.25],  # uniform over K' = 4: log 4
            [1.0, 0.0, 0.0, 0.0],  # one-hot: 0
            [0.5, 0.5, 0.7, 0.2],  # uniform over K' = 2, junk beyond: log 2
            [1.0, 0.3, 0.3, 0.3],  # K' = 1: 0, and no log K' to normalise by
        ]
    )
    n_valid = torch.tensor([4, 4, 2, 1])
    entropy = diagnostics.attention_entropy
    assert entropy(weights[:1], n_valid[:1]) == pytest.approx(math.log(4))
    assert entropy(weights[1:2], n_valid[1:2]) == 0.0
    assert entropy(weights, n_valid) == pytest.approx((math.log(4) + math.log(2)) / 4)
    assert entropy(weights[:1], n_valid[:1], normalised=True) == pytest.approx(1.0)
    assert entropy(weights, n_valid, normalised=True) == pytest.approx(2 / 3)  # 1, 0, 1; K' = 1 excluded
    assert math.isnan(entropy(weights[3:], n_valid[3:], normalised=True))


def test_command_on_a_tiny_checkpoint(tiny_data, capsys):
    """The command prints the three figures; with the fixed routing start every
    evaluation gives the training run's test metrics exactly (spread 0), and the
    measures are those of the model's own interests and attention."""
    result = run("MIND", "tiny", config_dict=tiny_config(tiny_data), cmd_args=[])
    model_file = result["model_file"]
    assert diagnostics.main([f"--checkpoint={model_file}", "--repeats=3"]) == 0
    out = capsys.readouterr().out
    for figure in ("interest diversity", "attention entropy (nats)", "attention entropy / log K'_u", "ndcg@10"):
        assert figure in out
    assert "routing_init_eval: fixed; 3 evaluations" in out

    model, test_data = diagnostics.load(model_file)
    spread = diagnostics.metric_spread(model, test_data, repeats=3)
    assert spread.keys() == result["test_result"].keys()
    for metric, value in result["test_result"].items():
        assert spread[metric] == {"min": value, "max": value, "std": 0.0}, metric

    interests, n_valid, weights = diagnostics.capture(model, test_data)
    assert interests.shape == (60, 4, 16) and n_valid.tolist() == [3] * 60  # K' = floor(log2 10): 10-item histories
    assert torch.allclose(weights.sum(1), torch.ones(60)) and (weights[:, 3] == 0).all()
    interaction = next(iter(test_data))[0]
    own, mask = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    assert torch.equal(interests[: len(own)], own)
    diversity = diagnostics.interest_diversity(interests, n_valid)
    assert -1 <= diversity < 0.99  # the fixed start keeps the interests apart
    assert f"{diversity:7.4f}" in out

    model.fixed_eval_routing = False  # the paper's random start at prediction
    spread = diagnostics.metric_spread(model, test_data, repeats=3)
    assert any(s["std"] > 0 for s in spread.values())


def test_command_refuses_a_dataset_with_other_tokens(tiny_data, capsys):
    model_file = run("MIND", "tiny", config_dict=tiny_config(tiny_data), cmd_args=[])["model_file"]
    inter = tiny_data / "tiny" / "tiny.inter"
    header, *rows = inter.read_text().splitlines(keepends=True)
    inter.write_text(header + "".join(reversed(rows)))  # RecBole numbers the tokens in another order
    assert diagnostics.main([f"--checkpoint={model_file}"]) == 2
    assert "other user or item tokens" in _one_paragraph_error(capsys)


def _one_paragraph_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_is_one_paragraph_and_exit_code_2(tmp_path, capsys):
    other = tmp_path / "GRU4Rec.pth"
    checkpoint.save({"config": {"model": "GRU4Rec", "dataset": "tiny"}}, other)
    cases = [
        ([f"--checkpoint={other}"], "not MIND"),
        ([f"--checkpoint={tmp_path / 'missing.pth'}"], "No checkpoint at"),
        ([], "No checkpoint given"),
        ([f"--checkpoint={other}", "--repeats=0"], "--repeats=0 is invalid"),
        (["--model=MIND"], "Unrecognised argument"),
    ]
    for argv, message in cases:
        assert diagnostics.main(argv) == 2
        assert message in _one_paragraph_error(capsys)


def test_runs_as_a_module(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "recbole_selfattn.diagnostics.mind", f"--checkpoint={tmp_path / 'missing.pth'}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: No checkpoint at"), proc.stderr
