"""The leaderboard benchmark command, end to end on the tiny dataset.

One benchmark (GRU4Rec and Caser, two seeds, plus an unknown model name) runs
once for the module; the other tests read its folder or copy it. The command
is called in-process, but every run is a real ``python -m
recbole_selfattn.benchmark --worker`` process (~5 s of start-up each), so the
tests launch as few runs as they can.
"""

import csv
import json
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from scipy.stats import wilcoxon

import recbole_selfattn
from recbole_selfattn import cli
from recbole_selfattn.quick_start import run
from tests.benchmark_helpers import load_json, machine_paths_in, markdown_table, progress, run_main
from tests.conftest import cyclic_sequences, tiny_config, write_inter

MODELS = ["GRU4Rec", "Caser"]
SEEDS = [2020, 2021]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    data = write_inter(root / "data", "tiny", cyclic_sequences())
    protocol = root / "tiny.yaml"
    protocol.write_text(yaml.safe_dump(tiny_config(data)))  # says seed 2020: the benchmark's seed must win
    output = root / "results"
    argv = ["--models=GRU4Rec,Caser,NoSuchModel", "--dataset=tiny", "--seeds=2",
            f"--config_files={protocol}", f"--output={output}"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        code, out, err = run_main(argv)
    return SimpleNamespace(root=root, protocol=protocol, output=output, argv=argv, code=code, out=out, err=err)


def test_end_to_end_progress_table_and_plots(bench):
    assert bench.code == 1, bench.err  # one model failed: exit status 1, yet the table is written
    lines = progress(bench.out)
    assert [line.split(" ...")[0] for line in lines] == [
        f"[{i + 1}/6] {m} seed={s}" for i, (m, s) in enumerate((m, s) for m in [*MODELS, "NoSuchModel"] for s in SEEDS)
    ]
    assert all(" ... done in " in line and "ndcg@10=" in line for line in lines[:4])
    assert all(" ... FAILED: UnknownModelError: Unknown model 'NoSuchModel'" in line for line in lines[4:])

    table = markdown_table((bench.output / "results.md").read_text())
    header, rows = table[0], table[1:]
    assert [row[0] for row in rows] == [*MODELS, "NoSuchModel"]
    assert all(len(row) == len(header) for row in rows)
    for metric in ("Recall", "MRR", "NDCG", "Hit"):
        for k in (5, 10, 20):
            assert f"{metric}@{k}" in header
    assert "Precision@10" not in header  # computed, but only in results.csv
    status = header.index("Status")
    assert [row[status] for row in rows[:2]] == ["ok", "ok"]
    assert rows[2][status].startswith("FAILED: 2/2 seeds failed") and "Unknown model 'NoSuchModel'" in rows[2][status]
    assert [row[1] for row in rows] == ["2/2", "2/2", "0/2"]

    md = (bench.output / "results.md").read_text()
    assert "**Dataset**: tiny" in md and "`tiny.yaml`" in md and "**Seeds**: 2020, 2021" in md
    assert "**Overrides (every run)**: none" in md and "**Machine**: CPU" in md and "**Generated**: 20" in md
    for png in ("metrics.png", "valid_curves.png"):
        content = (bench.output / png).read_bytes()
        assert content.startswith(b"\x89PNG") and len(content) > 5000


def test_mean_and_std_match_the_run_files(bench):
    summary = load_json(bench.output / "results.json")
    rows = {row["model"]: row for row in summary["rows"]}
    with open(bench.output / "results.csv", newline="") as f:
        csv_rows = {row["model"]: row for row in csv.DictReader(f)}
    md_rows = {row[0]: row for row in markdown_table((bench.output / "results.md").read_text())}
    for model in MODELS:
        runs = [load_json(bench.output / "runs" / f"{model}_seed{s}.json") for s in SEEDS]
        assert [r["status"] for r in runs] == ["ok", "ok"] and [r["seed"] for r in runs] == SEEDS
        assert set(runs[0]["test_result"]) == {f"{m}@{k}" for m in ("recall", "mrr", "ndcg", "hit", "precision")
                                               for k in (5, 10, 20)}
        for key in runs[0]["test_result"]:
            values = np.array([r["test_result"][key] for r in runs])
            mean, std = values.mean(), values.std(ddof=1)
            assert rows[model]["metrics"][key]["mean"] == pytest.approx(mean, abs=1e-12)
            assert rows[model]["metrics"][key]["std"] == pytest.approx(std, abs=1e-12)
            assert float(csv_rows[model][f"{key}_mean"]) == pytest.approx(mean, abs=1e-12)
            assert float(csv_rows[model][f"{key}_std"]) == pytest.approx(std, abs=1e-12)
        assert f"{np.mean([r['test_result']['ndcg@10'] for r in runs]):.4f} ± " \
               f"{np.std([r['test_result']['ndcg@10'] for r in runs], ddof=1):.4f}" in md_rows[model]
        assert rows[model]["seconds_per_epoch_mean"] == pytest.approx(np.mean([np.mean(r["epoch_seconds"]) for r in runs]))
        assert rows[model]["wall_seconds_total"] == pytest.approx(sum(r["wall_seconds"] for r in runs))
        assert rows[model]["peak_rss_mb_max"] == max(r["peak_rss_mb"] for r in runs) > 50
        assert rows[model]["best_epoch_mean"] == 1.0 and rows[model]["num_params"] == runs[0]["num_params"] > 0
        for r in runs:
            assert r["epochs_trained"] == 1 and len(r["valid_curve"]) == 1 and r["process_seconds"] > r["wall_seconds"]
            assert r["wall_seconds"] > r["train_seconds"] == r["seconds_to_best"] > r["epoch_seconds"][0] > 0
        assert rows[model]["train_seconds_mean"] == pytest.approx(np.mean([r["train_seconds"] for r in runs]))
        assert rows[model]["seconds_to_best_mean"] == pytest.approx(np.mean([r["seconds_to_best"] for r in runs]))
    assert rows["NoSuchModel"]["status"] == "FAILED" and rows["NoSuchModel"]["metrics"] == {}
    assert csv_rows["NoSuchModel"]["ndcg@10_mean"] == ""


def test_run_configs_hold_the_seed_and_their_command_reproduces_the_run(bench, monkeypatch):
    for model in MODELS:
        for seed in SEEDS:
            text = (bench.output / "configs" / f"{model}_seed{seed}.yaml").read_text()
            config = yaml.safe_load(text)
            assert (config["model"], config["seed"], config["epochs"], config["dataset"]) == (model, seed, 1, "tiny")
            assert f"--model={model} --dataset=tiny --config_files=tiny.yaml --seed={seed}" in text
    assert not (bench.output / "configs" / "NoSuchModel_seed2020.yaml").exists()

    record = load_json(bench.output / "runs" / "GRU4Rec_seed2021.json")
    monkeypatch.chdir(bench.root)  # commands run from the folder the benchmark ran from
    args = shlex.split(record["command"])
    assert args[0] == "recbole-selfattn"  # no run.py here: the console script
    model, dataset, files, overrides = cli.parse_args(args[1:])  # what the console script would do with it
    result = run(model, dataset, config_file_list=files, cmd_args=overrides)
    assert result["config"]["seed"] == 2021
    assert dict(result["test_result"]) == record["test_result"]


def test_resume_skips_done_runs_and_reruns_exactly_a_deleted_one(bench, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "results"
    shutil.copytree(bench.output, output)
    argv = [a if not a.startswith("--output=") else f"--output={output}" for a in bench.argv]
    before = {p.name: p.read_bytes() for p in (output / "runs").glob("*.json")}

    code, out, _ = run_main(argv)
    assert code == 1  # the unknown model is retried (and fails again)
    lines = progress(out)
    assert [line.split(" ... ")[1] for line in lines[:4]] == ["skipped (done)"] * 4
    assert all(" ... FAILED: UnknownModelError" in line for line in lines[4:]) and len(lines) == 6
    for model in MODELS:
        for seed in SEEDS:
            name = f"{model}_seed{seed}.json"
            assert (output / "runs" / name).read_bytes() == before[name]

    (output / "runs" / "Caser_seed2021.json").unlink()
    code, out, _ = run_main(argv)
    lines = progress(out)
    assert [line for line in lines if " done in " in line] == [line for line in lines if "Caser seed=2021" in line]
    assert len([line for line in lines if " done in " in line]) == 1 and out.count("skipped (done)") == 3
    again = load_json(output / "runs" / "Caser_seed2021.json")
    assert again["status"] == "ok" and again["test_result"] == json.loads(before["Caser_seed2021.json"])["test_result"]


def test_report_only_regenerates_the_same_tables_from_the_run_files(bench, tmp_path):
    output = tmp_path / "copy"
    shutil.copytree(bench.output, output)
    for name in ("results.md", "results.csv", "results.json", "metrics.png", "valid_curves.png"):
        (output / name).unlink()
    code, out, _ = run_main(["--report-only", f"--output={output}"])
    assert code == 0 and "written:" in out
    assert (output / "results.csv").read_text() == (bench.output / "results.csv").read_text()
    assert load_json(output / "results.json")["rows"] == load_json(bench.output / "results.json")["rows"]
    fresh, original = ((p / "results.md").read_text().splitlines() for p in (output, bench.output))
    assert [line for line in fresh if "Generated" not in line] == [line for line in original if "Generated" not in line]
    assert all((output / png).stat().st_size > 5000 for png in ("metrics.png", "valid_curves.png"))

    code, _, err = run_main(["--report-only", f"--output={tmp_path / 'empty'}"])
    assert code == 2 and "holds no benchmark" in err


def test_truncated_run_and_benchmark_files_are_reported_then_redone(bench, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "results"
    shutil.copytree(bench.output, output)
    argv = [a if not a.startswith("--output=") else f"--output={output}" for a in bench.argv]
    run_file, manifest = output / "runs" / "Caser_seed2021.json", output / "benchmark.json"
    run_file.write_text(run_file.read_text()[:100])  # a crash mid-write (before files were written atomically)

    code, _, err = run_main(["--report-only", f"--output={output}"])
    assert code == 0, err
    rows = {row["model"]: row for row in load_json(output / "results.json")["rows"]}
    assert rows["Caser"]["status"] == "FAILED" and rows["Caser"]["n"] == 1
    assert "seed 2021: run file Caser_seed2021.json is unreadable" in rows["Caser"]["note"]
    assert "unreadable" in {row[0]: row for row in markdown_table((output / "results.md").read_text())}["Caser"][-1]

    manifest.write_text(manifest.read_text()[:50])
    code, _, err = run_main(["--report-only", f"--output={output}"])
    assert code == 2 and "benchmark.json is not a readable benchmark record" in err and "Re-run" in err

    code, out, err = run_main(argv)
    assert code == 1, err  # NoSuchModel still fails
    assert "benchmark.json was unreadable" in out
    lines = progress(out)
    assert [line for line in lines if " done in " in line] == [line for line in lines if "Caser seed=2021" in line]
    assert out.count("skipped (done)") == 3
    assert load_json(run_file)["status"] == "ok" and load_json(manifest)["models"] == [*MODELS, "NoSuchModel"]
    assert {row["model"]: row["status"] for row in load_json(output / "results.json")["rows"]}["Caser"] == "ok"
    assert not list(output.rglob("*.tmp"))  # every file was written through a temporary file and renamed


def test_a_folder_with_other_settings_is_refused(bench, monkeypatch):
    monkeypatch.chdir(bench.root)
    code, out, err = run_main([*bench.argv, "--epochs=2"])
    assert code == 2 and "other settings (overrides differ" in err and "--epochs=2" in err and out == ""


def test_significance_column_matches_scipy_on_the_saved_per_user_arrays(bench):
    runs = {m: [load_json(bench.output / "runs" / f"{m}_seed{s}.json") for s in SEEDS] for m in MODELS}
    valid = {m: np.mean([r["best_valid_result"]["ndcg@10"] for r in runs[m]]) for m in MODELS}
    baseline = max(valid, key=valid.get)  # both are RecBole built-ins: chosen on validation, not test
    other = next(m for m in MODELS if m != baseline)

    def per_user(model):  # each user's NDCG@10 averaged over the two seeds
        files = [load_json(bench.output / r["per_user_file"]) for r in runs[model]]
        tables = [dict(zip(f["users"], f["ndcg@10"])) for f in files]
        assert len(tables[0]) == 60 and np.mean(list(tables[0].values())) == pytest.approx(
            runs[model][0]["test_result"]["ndcg@10"], abs=5e-5)  # RecBole rounds to 4 places
        return {u: np.mean([t[u] for t in tables]) for u in tables[0]}

    ours, theirs = per_user(other), per_user(baseline)
    users = sorted(ours)
    expected = wilcoxon([ours[u] for u in users], [theirs[u] for u in users]).pvalue
    summary = load_json(bench.output / "results.json")
    rows = {row["model"]: row for row in summary["rows"]}
    assert summary["benchmark"]["baseline"] == baseline and rows[baseline]["baseline"]
    test = rows[other]["significance"]
    assert test["p_value"] == pytest.approx(expected, rel=1e-12) and test["users"] == 60 and test["seeds"] == SEEDS
    assert test["mean_difference"] == pytest.approx(np.mean([ours[u] - theirs[u] for u in users]), abs=1e-12)
    assert test["test"] == "Wilcoxon signed-rank, two-sided"
    md = (bench.output / "results.md").read_text()
    cells = {row[0]: row for row in markdown_table(md)}
    column = markdown_table(md)[0].index("vs baseline")
    assert cells[baseline][column] == "baseline" and cells["NoSuchModel"][column] == "n/a"
    assert cells[other][column] == f"{test['mean_difference']:+.4f}, p={expected:.2g}"
    assert f"each model vs **{baseline}**" in md and "Wilcoxon signed-rank" in md


def test_results_folder_holds_no_absolute_path(bench):
    repo = Path(recbole_selfattn.__file__).resolve().parents[1]
    assert machine_paths_in(bench.output, repo, bench.root, bench.root.resolve()) == []
    assert {p.parent.name for p in bench.output.rglob("*.json")} >= {"runs", "per_user"}  # the grep saw them
