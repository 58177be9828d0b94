"""Checkpoints: exact resume, recommendations from a saved model,
reproducibility, distributed training on CPU, a diverging loss, and safe
checkpoint files (weights-only loading, atomic saves, one name per run,
one-paragraph errors for every bad file)."""

import datetime
import os
import pickle
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from recbole.trainer import Trainer

from recbole_selfattn import checkpoint, cli, quick_start, recommend
from recbole_selfattn.errors import NonFiniteLossError, UsageError
from recbole_selfattn.quick_start import run
from recbole_selfattn.recommender import Recommender
from tests.conftest import cli_args, cyclic_sequences, one_paragraph_error, tiny_config, write_inter

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
    assert proc.stdout.count("test result") == 1  # reported once, by rank 0 (the table's header)


# --- Safe checkpoints: nothing in a file runs, every bad file is one paragraph ---------------


class _CreatesFile:
    """Unpickling this calls os.system: what a crafted checkpoint does."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_crafted_checkpoint_is_refused_unread(writer, tiny_data, capsys):
    marker = tiny_data.parent / "pwned"
    crafted = tiny_data.parent / "crafted.pth"
    payload = {"config": {"model": "GRU4Rec", "dataset": "tiny"}, "epoch": 0, "x": _CreatesFile(marker)}
    if writer == "torch.save":
        torch.save(payload, crafted)
    else:
        crafted.write_bytes(pickle.dumps(payload))
    with pytest.raises(UsageError, match="could not be read safely"):
        recommend(str(crafted), ["i3"])
    assert cli.main(["--model=GRU4Rec", "--dataset=tiny", *cli_args(tiny_data), f"--checkpoint={crafted}"]) == 2
    assert "nothing in it ran" in one_paragraph_error(capsys)
    assert not marker.exists()


@pytest.fixture
def trained(tiny_data):
    """A GRU4Rec checkpoint trained two epochs on ``tiny``."""
    return _run("GRU4Rec", tiny_data, epochs=2)["model_file"]


@pytest.fixture
def dataset_builds(monkeypatch):
    """The datasets built by ``run``: an error raised before any is known early."""
    built = []
    original = quick_start.create_dataset

    def spy(config):
        built.append(config["dataset"])
        return original(config)

    monkeypatch.setattr(quick_start, "create_dataset", spy)
    return built


def _bad_checkpoint(kind, trained, folder):
    """Write the ``kind`` of bad checkpoint into ``folder``; returns (path, model)."""
    path = folder / f"{kind}.pth"
    if kind == "truncated":
        data = Path(trained).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random bytes":
        path.write_bytes(random.Random(0).randbytes(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "missing":
        pass
    elif kind == "folder":
        path.mkdir()
    elif kind == "foreign torch file":
        torch.save({"state_dict": {}, "epoch": 3}, path)
    elif kind == "other model":
        return Path(trained), "SASRec"
    return path, "GRU4Rec"


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("truncated", "could not be read safely"),
        ("random bytes", "could not be read safely"),
        ("empty", "is empty"),
        ("missing", "No checkpoint at"),
        ("folder", "is a folder, not a checkpoint"),
        ("foreign torch file", "not a recbole-selfattn checkpoint"),
        ("other model", "was trained with model=GRU4Rec, but this run has model=SASRec"),
    ],
)
def test_bad_checkpoint_option_fails_before_the_dataset_is_built(kind, expected, trained, tiny_data, dataset_builds, capsys):
    path, model = _bad_checkpoint(kind, trained, tiny_data.parent)
    assert cli.main([f"--model={model}", "--dataset=tiny", *cli_args(tiny_data, epochs=4), f"--checkpoint={path}"]) == 2
    assert expected in one_paragraph_error(capsys)
    assert dataset_builds == []


def test_checkpoint_of_another_dataset(trained, tiny_data, dataset_builds, capsys):
    write_inter(tiny_data, "other", cyclic_sequences())
    assert cli.main(["--model=GRU4Rec", "--dataset=other", *cli_args(tiny_data, epochs=4), f"--checkpoint={trained}"]) == 2
    assert "was trained with dataset=tiny, but this run has dataset=other" in one_paragraph_error(capsys)
    assert dataset_builds == []


@pytest.mark.parametrize("change, expected", [("more items", "does not fit this GRU4Rec model"),
                                              ("shuffled rows", "other user_id and item_id tokens")])
def test_checkpoint_of_other_data_under_the_same_name(change, expected, trained, tiny_data, capsys):
    """Known only once the dataset is built: a vocabulary of another size, or
    the same tokens with other ids (RecBole numbers tokens by first appearance)."""
    if change == "more items":
        write_inter(tiny_data, "tiny", cyclic_sequences(n_items=40))
    else:
        _shuffle_rows(tiny_data / "tiny" / "tiny.inter")
    assert cli.main(["--model=GRU4Rec", "--dataset=tiny", *cli_args(tiny_data, epochs=4), f"--checkpoint={trained}"]) == 2
    assert expected in one_paragraph_error(capsys)


def _shuffle_rows(inter):
    header, *rows = inter.read_text().splitlines()
    random.Random(1).shuffle(rows)
    inter.write_text("\n".join([header, *rows]) + "\n")


def test_checkpoint_dir_that_is_a_file(tiny_data, dataset_builds, capsys):
    (tiny_data.parent / "saved").write_text("not a folder")
    assert cli.main(["--model=GRU4Rec", "--dataset=tiny", *cli_args(tiny_data)]) == 2
    assert "checkpoint_dir=saved is a file, not a folder" in one_paragraph_error(capsys)
    assert dataset_builds == []


@pytest.mark.parametrize("extra_epochs", [0, -1])
def test_resume_with_no_epochs_left_names_the_epochs_to_give(extra_epochs, trained, tiny_data, dataset_builds, capsys):
    done = checkpoint.load(trained)["epoch"] + 1
    epochs = done + extra_epochs
    args = cli_args(tiny_data, epochs=epochs)
    assert cli.main(["--model=GRU4Rec", "--dataset=tiny", *args, f"--checkpoint={trained}"]) == 2
    err = one_paragraph_error(capsys)
    assert f"already holds {done} trained epoch(s)" in err and f"epochs={epochs} leaves nothing to train" in err
    assert f"give more than {done}" in err
    assert dataset_builds == []


# --- Resumed runs report the whole run ----------------------------------------------------------


def test_resume_keeps_best_epoch_and_result_of_the_uninterrupted_run(tiny_data):
    full = _run("GRU4Rec", tiny_data, epochs=4, learning_rate=0.003)
    first_half = _run("GRU4Rec", tiny_data, epochs=2, learning_rate=0.003, checkpoint_dir="interrupted")
    resumed = _run("GRU4Rec", tiny_data, epochs=4, learning_rate=0.003, checkpoint_dir="interrupted",
                   checkpoint=first_half["model_file"])
    assert resumed["valid_curve"] == full["valid_curve"]  # the checkpoint's evaluations included
    assert resumed["best_epoch"] == full["best_epoch"] == 4
    assert resumed["best_valid_result"] == full["best_valid_result"]


def test_resume_without_improvement_reports_the_checkpoints_best(tiny_data, monkeypatch):
    first = _run("GRU4Rec", tiny_data, epochs=2, learning_rate=0.01)
    assert first["best_valid_result"] and first["best_epoch"] == 2

    def worse(self, valid_data, show_progress=False):
        return -1.0, {key: -1.0 for key in first["best_valid_result"]}

    monkeypatch.setattr(Trainer, "_valid_epoch", worse)  # no epoch after the resume improves
    resumed = _run("GRU4Rec", tiny_data, epochs=4, checkpoint=first["model_file"])
    assert resumed["best_valid_result"] == first["best_valid_result"]
    assert resumed["best_valid_score"] == first["best_valid_score"]
    assert resumed["best_epoch"] == 2
    assert resumed["valid_curve"] == first["valid_curve"] + [-1.0, -1.0]
    assert resumed["test_result"] == first["test_result"]  # tests the checkpoint's model


# --- Saves are atomic and named per run ---------------------------------------------------------


def test_interrupted_save_keeps_the_file_a_run_resumed_from(tiny_data, monkeypatch):
    model_file = _run("GRU4Rec", tiny_data, epochs=2, learning_rate=0.01)["model_file"]
    before = Path(model_file).read_bytes()
    expected = recommend(model_file, ["i3", "i4"], k=5)
    real_save = torch.save

    def killed_mid_write(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        if isinstance(f, (str, os.PathLike)):
            os.truncate(f, os.path.getsize(f) // 2)
        else:
            f.truncate(f.tell() // 2)
        raise KeyboardInterrupt  # the process "dies" with half the file written

    monkeypatch.setattr(torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        _run("GRU4Rec", tiny_data, epochs=4, learning_rate=0.01, checkpoint=model_file)
    monkeypatch.setattr(torch, "save", real_save)
    assert Path(model_file).read_bytes() == before
    assert recommend(model_file, ["i3", "i4"], k=5) == expected
    assert [p.name for p in Path(model_file).parent.iterdir()] == [Path(model_file).name]  # no temporary left


class _FrozenClock:
    """``datetime`` for RecBole's ``get_local_time``: always the same second."""

    class datetime:
        @staticmethod
        def now():
            return datetime.datetime(2026, 11, 23, 17, 27, 51)


def test_runs_started_in_the_same_second_get_their_own_files(tiny_data, monkeypatch):
    import recbole.utils.utils

    monkeypatch.setattr(recbole.utils.utils, "datetime", _FrozenClock)
    first = _run("GRU4Rec", tiny_data, epochs=1)
    second = _run("GRU4Rec", tiny_data, epochs=1)
    assert first["model_file"] != second["model_file"]
    assert all("Nov-23-2026_17-27-51" in r["model_file"] for r in (first, second))
    logs = sorted((tiny_data.parent / "log" / "GRU4Rec").iterdir())
    assert len(logs) == 2 and all("Nov-23-2026_17-27-51" in log.name for log in logs)


# --- Recommendations come from the checkpoint alone --------------------------------------------


def test_recommendations_ignore_later_changes_to_the_data(tiny_data):
    model_file = _run("GRU4Rec", tiny_data, epochs=8, learning_rate=0.01)["model_file"]
    history = ["i3", "i4", "i5", "i6"]
    before = recommend(model_file, history, k=5)
    _shuffle_rows(tiny_data / "tiny" / "tiny.inter")  # RecBole would number the tokens differently
    assert recommend(model_file, history, k=5) == before
    shutil.rmtree(tiny_data)  # the dataset files are not needed at all
    assert recommend(model_file, history, k=5) == before


def test_exclude_history_returns_fewer_items_when_few_are_left(tiny_data):
    model_file = _run("GRU4Rec", tiny_data, epochs=1)["model_file"]
    history = [f"i{i}" for i in range(1, 28)]  # 27 of the 30 items, longer than MAX_ITEM_LIST_LENGTH=10
    top = recommend(model_file, history, k=10, exclude_history=True)
    assert sorted(top) == ["i28", "i29", "i30"]


@pytest.mark.parametrize("model, overrides", [("AttRec", {"omega": 0.5}), ("MTAW", {}), ("MIND", {})])
def test_plugin_models_recommend_from_the_checkpoint_alone(model, overrides, tiny_data):
    model_file = _run(model, tiny_data, epochs=1, **overrides)["model_file"]
    shutil.rmtree(tiny_data)
    recommender = Recommender(model_file)
    assert recommender.dataset.num("item_id") == 31 and recommender.dataset.num("user_id") == 61
    top = recommender.recommend(["i3", "i4", "i5"], k=5, user="u2")
    assert len(set(top)) == 5 and all(t in {f"i{i}" for i in range(1, 31)} for t in top)
