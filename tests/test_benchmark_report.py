"""Tables, significance and plots from hand-built run files (no training),
old results folders, and what ``--report-only`` imports."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from scipy.stats import wilcoxon

import recbole_selfattn
from recbole_selfattn.benchmark import plots, records
from recbole_selfattn.benchmark.report import write_report
from tests.benchmark_helpers import markdown_table, run_main

REPO = Path(recbole_selfattn.__file__).resolve().parents[1]
MODELS = ["Ours", "BaseA", "BaseB", "Broken"]
SEEDS = [1, 2]
USERS = [f"u{i}" for i in range(20)]


def _ok(model, seed, valid, source, values, curve):
    name = f"{model}_seed{seed}"
    return {"model": model, "seed": seed, "status": "ok", "source": source, "valid_metric": "NDCG@10",
            "test_result": {"ndcg@10": float(np.mean(values))}, "best_valid_result": {"ndcg@10": valid},
            "valid_curve": curve, "eval_step": 1, "best_epoch": len(curve), "per_user_file": f"per_user/{name}.json",
            "finished_at": "2026-01-01T00:00:00+00:00"}


@pytest.fixture
def folder(tmp_path):
    """Ours (plugin; seed 2 failed, one evaluation), BaseA (best on validation,
    worse on test), BaseB (better on test), Broken (every seed failed)."""
    rng = np.random.default_rng(0)
    output = tmp_path / "toy"
    records.write_json(output / records.MANIFEST, {"dataset": "toy", "config_files": [], "overrides": [],
                                                    "models": MODELS, "seeds": SEEDS})
    plan = {("Ours", 1): (0.25, "plugin", 0.30, [0.25]), ("BaseA", 1): (0.30, "recbole", 0.10, [0.1, 0.2, 0.30]),
            ("BaseA", 2): (0.32, "recbole", 0.12, [0.1, 0.32]), ("BaseB", 1): (0.20, "recbole", 0.40, [0.2]),
            ("BaseB", 2): (0.22, "recbole", 0.38, [0.22])}
    per_user = {}
    for (model, seed), (valid, source, level, curve) in plan.items():
        values = np.clip(level + rng.normal(0, 0.1, len(USERS)), 0, 1)
        per_user[model, seed] = dict(zip(USERS, values))
        records.write_json(output / "per_user" / f"{model}_seed{seed}.json", {"users": USERS, "ndcg@10": list(values)})
        records.write_json(output / "runs" / f"{model}_seed{seed}.json", _ok(model, seed, valid, source, values, curve))
    for model, seed in (("Ours", 2), ("Broken", 1), ("Broken", 2)):
        records.write_json(output / "runs" / f"{model}_seed{seed}.json",
                           {"model": model, "seed": seed, "status": "failed", "error": "ValueError: boom"})
    return output, per_user


def test_baseline_is_chosen_on_validation_and_each_test_matches_scipy(folder):
    output, per_user = folder
    summary = write_report(output)
    rows = {row["model"]: row for row in summary["rows"]}
    assert summary["benchmark"]["baseline"] == "BaseA"  # BaseB is better on test, but validation chooses
    base = {u: np.mean([per_user["BaseA", s][u] for s in SEEDS]) for u in USERS}
    b_mean = {u: np.mean([per_user["BaseB", s][u] for s in SEEDS]) for u in USERS}
    for model, ours, seeds in (("BaseB", b_mean, SEEDS),
                               # Ours has seed 1 only: the baseline's seed 1 alone is paired with it
                               ("Ours", per_user["Ours", 1], [1])):
        theirs = base if seeds == SEEDS else per_user["BaseA", 1]
        test = rows[model]["significance"]
        assert test["p_value"] == pytest.approx(wilcoxon([ours[u] for u in USERS], [theirs[u] for u in USERS]).pvalue)
        assert test["mean_difference"] == pytest.approx(np.mean([ours[u] - theirs[u] for u in USERS]))
        assert test["seeds"] == seeds and test["users"] == len(USERS)
    assert rows["Broken"]["significance"] is None and rows["BaseA"]["baseline"]
    table = markdown_table((output / "results.md").read_text())
    column = table[0].index("vs baseline")
    cells = {row[0]: row[column] for row in table[1:]}
    assert cells["BaseA"] == "baseline" and cells["Broken"] == "n/a"
    assert cells["Ours"] == f"{rows['Ours']['significance']['mean_difference']:+.4f}, p={rows['Ours']['significance']['p_value']:.2g}"


def test_identical_per_user_results_have_no_p_value(folder):
    output, _ = folder
    shutil.copy(output / "per_user" / "BaseA_seed1.json", output / "per_user" / "Ours_seed1.json")
    rows = {row["model"]: row for row in write_report(output)["rows"]}
    assert rows["Ours"]["significance"]["p_value"] is None and rows["Ours"]["significance"]["mean_difference"] == 0
    assert "+0.0000, identical" in (output / "results.md").read_text()


def test_metrics_plot_marks_failed_rows_and_draws_error_bars_only_for_n_of_two_or_more(folder):
    output, _ = folder
    summary = write_report(output)
    ax = plots.metrics_figure(summary["rows"], summary["benchmark"]).axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["Ours\nn=1/2\nFAILED", "BaseA\nn=2/2", "BaseB\nn=2/2", "Broken\nn=0/2\nFAILED"]
    assert sorted(t.get_text() for t in ax.texts) == ["FAILED", "FAILED"]
    error_bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    positions = {round(segment[0][0]) for c in error_bars for segment in c.lines[2][0].get_segments()}
    assert positions == {1, 2}  # BaseA and BaseB: Ours has n = 1, Broken none
    assert (output / "metrics.png").read_bytes().startswith(b"\x89PNG")


def test_valid_curves_plot_a_single_evaluation_as_a_marker_and_list_models_without_a_curve(folder):
    output, _ = folder
    summary = write_report(output)
    per_model = {m: [records.load_run(output, m, s) for s in SEEDS] for m in MODELS}
    ax = plots.valid_curves_figure(per_model, summary["rows"], summary["benchmark"]).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"Ours (FAILED)", "BaseA", "BaseB", "Broken (FAILED): no curve"}
    assert lines["Ours (FAILED)"].get_linestyle() == "None" and lines["Ours (FAILED)"].get_marker() == "o"
    assert lines["BaseA"].get_linestyle() == "-" and len(lines["BaseA"].get_xdata()) == 3
    assert len(lines["Broken (FAILED): no curve"].get_xdata()) == 0


@pytest.mark.parametrize("name", ["ml-100k", "ml-1m", "tmall"])
def test_old_results_folders_are_read_without_significance_or_times(name, tmp_path):
    if not (REPO / "results" / name / records.MANIFEST).is_file():
        pytest.skip(f"results/{name} is not in this checkout")
    output = tmp_path / name
    shutil.copytree(REPO / "results" / name, output)
    # the folder as it was before RecBole's baselines ran in it: their run files
    # (new ones, with per-user metrics) are left out, the plugin models' old ones stay
    for run in (output / "runs").glob("*.json"):
        if json.loads(run.read_text()).get("source") == "recbole":
            run.unlink()
            (output / "per_user" / run.name).unlink(missing_ok=True)
    code, out, err = run_main(["--report-only", f"--output={output}"])
    assert code == 0, err
    summary = json.loads((output / "results.json").read_text())
    assert summary["benchmark"]["baseline"] is None and all(row["significance"] is None for row in summary["rows"])
    assert "none: no RecBole built-in model succeeded with per-user test metrics" in (output / "results.md").read_text()


MODEL_MODULES = """
import json, sys
{code}
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("recbole.model", "recbole_selfattn.model")))))
"""


def _model_modules(code):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", MODEL_MODULES.format(code=code)], env=env, capture_output=True,
                         text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_report_only_imports_no_model_code(folder):
    output, _ = folder
    report_only = _model_modules(
        f"from recbole_selfattn.benchmark import main\nassert main(['--report-only', '--output={output}']) == 0")
    assert report_only == set()
