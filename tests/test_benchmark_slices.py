"""A benchmark built in slices, end to end on the tiny dataset (GRU4Rec, one
seed, four epochs): interrupted anywhere and re-run, every unfinished run
continues from its last completed epoch and ends exactly as the uninterrupted
run; a run with a live worker is never started twice; a killed launcher leaves
no orphan worker.

Waits poll with generous limits and nothing asserts how long anything took."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import recbole_selfattn
from recbole_selfattn import checkpoint
from recbole_selfattn import trainer as trainer_module
from recbole_selfattn.benchmark import cli, launcher, records, worker
from tests.benchmark_helpers import load_json, progress, run_main, tiny_protocol

REPO = Path(recbole_selfattn.__file__).resolve().parents[1]
ARGV = ["--models=GRU4Rec", "--dataset=tiny", "--seeds=2020,", "--config_files=tiny.yaml", "--output=out"]
PROTOCOL = {"epochs": 4, "stopping_step": 10}


def _run_files(root):
    paths = records.run_paths(root / "out", "GRU4Rec", 2020)
    return paths, load_json(paths.run), load_json(paths.per_user)


def _same_result(root, reference):
    paths, record, per_user = _run_files(root)
    _, expected, expected_per_user = reference
    assert record["status"] == "ok" and record["epochs_trained"] == 4
    assert record["valid_curve"] == expected["valid_curve"] and record["best_epoch"] == expected["best_epoch"]
    assert record["test_result"] == expected["test_result"] and per_user == expected_per_user
    assert not paths.resume.exists()  # finished: only the best checkpoint stays
    assert (paths.output / record["model_file"]).is_file()
    return record


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted benchmark."""
    root = tmp_path_factory.mktemp("uninterrupted")
    tiny_protocol(root, **PROTOCOL)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        code, _, err = run_main(ARGV)
    assert code == 0, err
    return _run_files(root)


class Interrupted(BaseException):
    """Stands for a kill -9 right after an epoch-end checkpoint was saved."""


def test_interrupted_after_an_epoch_the_rerun_continues_and_ends_as_the_uninterrupted_run(
        reference, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_protocol(tmp_path, **PROTOCOL)
    args = cli.parse_args(ARGV)
    launcher.write_manifest(args, ARGV)
    end_epoch = trainer_module.SequentialTrainer._end_epoch

    def end_epoch_then_die(trainer, epoch_idx):
        end_epoch(trainer, epoch_idx)
        if epoch_idx == 1:
            raise Interrupted

    with monkeypatch.context() as patch:
        patch.setattr(trainer_module.SequentialTrainer, "_end_epoch", end_epoch_then_die)
        with pytest.raises(Interrupted):  # the worker's first slice, in this process
            worker.work(cli.parse_args(["--worker", "--output=out", "--model=GRU4Rec", "--seed=2020"]))
    paths = records.run_paths(tmp_path / "out", "GRU4Rec", 2020)
    saved = checkpoint.load(paths.resume)
    assert saved["epoch"] == 1 and len(saved["valid_curve"]) == 2 and not paths.run.exists()

    code, out, err = run_main(ARGV)  # the second slice: a worker process continues from epoch 2
    assert code == 0, err
    assert [line.split(" ... ")[1].split(" in ")[0] for line in progress(out)] == ["done"]
    record = _same_result(tmp_path, reference)
    assert record["epoch_seconds"][:2] == saved["epoch_seconds"]  # the first slice's epochs were kept, not redone
    assert record["train_seconds"] > saved["elapsed_seconds"][-1]


def _alive(pid):
    """``pid`` runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(condition, limit=180.0):
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to see the worker die")
def test_kill_9_of_the_launcher_leaves_no_orphan_and_the_rerun_ends_as_the_uninterrupted_run(
        reference, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_protocol(tmp_path, **PROTOCOL)
    paths = records.run_paths(tmp_path / "out", "GRU4Rec", 2020)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    launcher_process = subprocess.Popen([sys.executable, "-m", "recbole_selfattn.benchmark", *ARGV], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: worker.holder(paths) is not None), "the worker never took its lock"
        pid = worker.holder(paths)
        # Let it train into its first epochs where it can (wherever the kill lands, the re-run must match).
        _wait_for(lambda: paths.resume.exists() or not _alive(pid), limit=60)
        launcher_process.send_signal(signal.SIGKILL)
        launcher_process.wait()
        assert _wait_for(lambda: not _alive(pid), limit=60), f"worker {pid} outlived its launcher"
    finally:
        launcher_process.kill()
        launcher_process.wait()
    # A dead worker's lock blocks nothing (the kernel may release it a moment after the process ends).
    assert _wait_for(lambda: worker.holder(paths) is None, limit=60)

    code, _, err = run_main(ARGV)
    assert code == 0, err
    _same_result(tmp_path, reference)


def test_a_run_whose_worker_is_alive_is_not_started_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_protocol(tmp_path, epochs=1)
    paths = records.run_paths(tmp_path / "out", "GRU4Rec", 2020)
    lock = worker.lock_run(paths)  # this process stands for a live worker of another launcher
    try:
        assert worker.holder(paths) == os.getpid()
        code, out, _ = run_main(ARGV)
        assert code == 1 and progress(out) == ["[1/1] GRU4Rec seed=2020 ... skipped (running in another process)"]
        assert not paths.run.exists() and not paths.log.exists()
        assert load_json(tmp_path / "out" / "results.json")["rows"][0]["status"] == "incomplete"
    finally:
        lock.close()
    code, out, err = run_main(ARGV)  # the lock is free: the run is made
    assert code == 0, err
    assert " ... done in " in out
