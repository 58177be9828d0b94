"""What a person sees: a metrics table, progress bars only on a terminal, the
config dump in the log file, no library warnings through the Python API."""

import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np

from recbole_selfattn import Config
from recbole_selfattn.output import metrics_table
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[1]


def test_metrics_table_has_a_row_per_metric():
    valid = OrderedDict((f"{m}@{k}", np.float64(k / 100)) for m in ("recall", "ndcg") for k in (5, 10))
    test = OrderedDict((f"{m}@{k}", np.float64(k / 200)) for m in ("recall", "ndcg") for k in (5, 10))
    lines = metrics_table(valid, test).splitlines()
    assert lines[0].split() == ["metric", "best", "valid", "test", "result"]
    assert lines[1].split() == ["recall@5", "0.0500", "0.0250"]
    assert [line.split()[0] for line in lines[2:]] == ["recall@10", "ndcg@5", "ndcg@10"]
    assert "float64" not in "\n".join(lines) and "OrderedDict" not in "\n".join(lines)


def test_metrics_table_of_value_metrics_and_missing_cells():
    lines = metrics_table({"auc": 0.75, "logloss": 0.5}, {"auc": 0.7}).splitlines()
    assert lines[1].split() == ["auc", "0.7500", "0.7000"]
    assert lines[2].split() == ["logloss", "0.5000", "-"]


def test_progress_bars_only_on_a_terminal_unless_set(tiny_data, monkeypatch):
    settings = tiny_config(tiny_data)
    settings.pop("show_progress")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert Config("GRU4Rec", "tiny", config_dict=settings, cmd_args=[])["show_progress"] is False
    assert Config("GRU4Rec", "tiny", config_dict=settings, cmd_args=["--show_progress=True"])["show_progress"] is True
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert Config("GRU4Rec", "tiny", config_dict=settings, cmd_args=[])["show_progress"] is True
    assert Config("GRU4Rec", "tiny", config_dict={**settings, "show_progress": False}, cmd_args=[])["show_progress"] is False


def test_python_api_shows_no_library_warnings_and_recommends_plain_str(tiny_data):
    """Warnings shown by default (``-W default``): RecBole's pandas/torch
    deprecations stay hidden, a warning of the user's own still shows."""
    script = f"""
import warnings
from recbole_selfattn import recommend
from recbole_selfattn.quick_start import run
result = run("GRU4Rec", "tiny", config_dict={tiny_config(tiny_data, state="ERROR")!r}, cmd_args=[])
items = recommend(result["model_file"], ["i3", "i4"], k=3)
assert len(items) == 3 and all(type(item) is str for item in items), items
warnings.warn("the user's own", FutureWarning)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-W", "default", "-c", script], cwd=tiny_data.parent,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("Warning") == 1 and "FutureWarning: the user's own" in proc.stderr, proc.stderr[-3000:]
