"""Clean errors under ``--nproc``: a rank's one paragraph, not mp.spawn's traceback.

A rank that meets bad input or a diverging loss sends the error back; the
parent stops the other ranks and raises it, so ``run.py`` prints one
paragraph and exits 2, exactly as a single-process run does."""

import queue
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recbole_selfattn import distributed
from recbole_selfattn.errors import NonFiniteLossError, UsageError
from tests.conftest import tiny_config, write_inter

REPO = Path(__file__).resolve().parents[1]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_py(tmp_path, *args):
    config = tiny_config(tmp_path / "data", state="INFO")
    config.pop("load_col")
    options = [f"--{key}={value}" for key, value in config.items()]
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), "--model=GRU4Rec", "--dataset=tiny", *options, *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )


def _assert_one_paragraph(proc, *words):
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) < 15, err[-3000:]
    for word in words:
        assert word in err, err[-3000:]


def _diverges(model, dataset, config_file_list, config_dict, saved, cmd_args):
    """A ``run_single`` whose rank 1 diverges while rank 0 waits (as in an
    all-reduce that will never complete)."""
    if config_dict["local_rank"] == 1:
        raise NonFiniteLossError(0, 3, float("nan"))
    time.sleep(120)


def test_worker_sends_a_rank_error_to_the_parent_and_exits_quietly():
    messages = queue.SimpleQueue()
    args = ("GRU4Rec", "tiny", None, {"offset": 0}, True, [])
    distributed._worker(1, _diverges, args, messages)  # returns: no traceback from this rank
    kind, error = messages.get()
    assert kind == "error" and isinstance(error, NonFiniteLossError) and error.batch == 3
    assert messages.empty()


def test_spawn_raises_a_rank_error_and_stops_the_waiting_ranks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = {"model": "GRU4Rec", "checkpoint_dir": "saved", "nproc": 2, "world_size": -1, "ip": None,
              "port": _free_port(), "offset": 0}
    with pytest.raises(NonFiniteLossError, match="the loss is nan at epoch 0, batch 3"):
        distributed.spawn(_diverges, "GRU4Rec", "tiny", None, {}, True, [], config)


def test_busy_port_inside_a_rank_is_a_usage_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config_dict = {"local_rank": 0, "offset": 0, "world_size": 1, "ip": "127.0.0.1", "port": port}
        with pytest.raises(UsageError, match=f"Port {port} is already in use.*--port=N"):
            distributed.init_process_group(config_dict)


def test_run_py_busy_port_is_one_paragraph(tmp_path):
    write_inter(tmp_path / "data", "tiny", [[1, 2, 3, 4]] * 4)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _run_py(tmp_path, "--nproc=2", f"--port={port}")
    _assert_one_paragraph(proc, f"error: Port {port} is already in use", "--port=")


def test_run_py_too_short_histories_in_the_ranks_is_one_paragraph(tmp_path):
    """Both ranks build the dataset and find no user with 3 interactions."""
    write_inter(tmp_path / "data", "tiny", [[1, 2], [2, 3], [3, 1]])
    proc = _run_py(tmp_path, "--nproc=2", f"--port={_free_port()}")
    _assert_one_paragraph(proc, "error: Dataset 'tiny' has 6 interactions", "no user has at least 3 interactions")
