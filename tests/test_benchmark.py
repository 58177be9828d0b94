"""The leaderboard benchmark command, end to end on the tiny dataset.

One benchmark (GRU4Rec and Caser, two seeds, plus an unknown model name) runs
once for the module; the other tests read its folder or copy it. The command
is called in-process, but every run is a real ``python -m
recbole_selfattn.benchmark --worker`` process (~5 s of start-up each), so the
tests launch as few runs as they can.
"""

import csv
import io
import json
import shlex
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from recbole_selfattn import benchmark, cli
from recbole_selfattn.quick_start import run
from tests.conftest import cyclic_sequences, tiny_config, write_inter

MODELS = ["GRU4Rec", "Caser"]
SEEDS = [2020, 2021]


def _main(argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = benchmark.main(argv)
    return code, out.getvalue(), err.getvalue()


def _progress(out):
    """The progress lines (``[i/n] model seed=s ... outcome``) of the command's output."""
    return [line for line in out.splitlines() if line.startswith("[")]


def _json(path):
    return json.loads(path.read_text())


def _table(markdown):
    """The Markdown table of results.md as a list of rows of cells (header first)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert set(lines[1].replace("|", "")) == {"-"}  # the separator row
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in [lines[0], *lines[2:]]]


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
        code, out, err = _main(argv)
    return SimpleNamespace(root=root, protocol=protocol, output=output, argv=argv, code=code, out=out, err=err)


def test_end_to_end_progress_table_and_plots(bench):
    assert bench.code == 1, bench.err  # one model failed: exit status 1, yet the table is written
    lines = _progress(bench.out)
    assert [line.split(" ...")[0] for line in lines] == [
        f"[{i + 1}/6] {m} seed={s}" for i, (m, s) in enumerate((m, s) for m in [*MODELS, "NoSuchModel"] for s in SEEDS)
    ]
    assert all(" ... done in " in line and "ndcg@10=" in line for line in lines[:4])
    assert all(" ... FAILED: UnknownModelError: Unknown model 'NoSuchModel'" in line for line in lines[4:])

    table = _table((bench.output / "results.md").read_text())
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
    assert "**Dataset**: tiny" in md and str(bench.protocol) in md and "**Seeds**: 2020, 2021" in md
    assert "**Overrides (every run)**: none" in md and "**Machine**: CPU" in md and "**Generated**: 20" in md
    for png in ("metrics.png", "valid_curves.png"):
        content = (bench.output / png).read_bytes()
        assert content.startswith(b"\x89PNG") and len(content) > 5000


def test_mean_and_std_match_the_run_files(bench):
    summary = _json(bench.output / "results.json")
    rows = {row["model"]: row for row in summary["rows"]}
    with open(bench.output / "results.csv", newline="") as f:
        csv_rows = {row["model"]: row for row in csv.DictReader(f)}
    md_rows = {row[0]: row for row in _table((bench.output / "results.md").read_text())}
    for model in MODELS:
        runs = [_json(bench.output / "runs" / f"{model}_seed{s}.json") for s in SEEDS]
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
    assert rows["NoSuchModel"]["status"] == "FAILED" and rows["NoSuchModel"]["metrics"] == {}
    assert csv_rows["NoSuchModel"]["ndcg@10_mean"] == ""


def test_run_configs_hold_the_seed_and_their_command_reproduces_the_run(bench, monkeypatch):
    for model in MODELS:
        for seed in SEEDS:
            text = (bench.output / "configs" / f"{model}_seed{seed}.yaml").read_text()
            config = yaml.safe_load(text)
            assert (config["model"], config["seed"], config["epochs"], config["dataset"]) == (model, seed, 1, "tiny")
            assert f"--model={model} --dataset=tiny --config_files={bench.protocol} --seed={seed}" in text
    assert not (bench.output / "configs" / "NoSuchModel_seed2020.yaml").exists()

    record = _json(bench.output / "runs" / "GRU4Rec_seed2021.json")
    cd, _, command = record["command"].partition(" && ")
    monkeypatch.chdir(shlex.split(cd)[1])
    args = shlex.split(command)
    assert args[:2] == ["python", str(Path(benchmark.__file__).parents[1] / "run.py")]
    model, dataset, files, overrides = cli.parse_args(args[2:])  # what run.py would do with it
    result = run(model, dataset, config_file_list=files, cmd_args=overrides)
    assert result["config"]["seed"] == 2021
    assert dict(result["test_result"]) == record["test_result"]


def test_resume_skips_done_runs_and_reruns_exactly_a_deleted_one(bench, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "results"
    shutil.copytree(bench.output, output)
    argv = [a if not a.startswith("--output=") else f"--output={output}" for a in bench.argv]
    before = {p.name: p.read_bytes() for p in (output / "runs").glob("*.json")}

    code, out, _ = _main(argv)
    assert code == 1  # the unknown model is retried (and fails again)
    lines = _progress(out)
    assert [line.split(" ... ")[1] for line in lines[:4]] == ["skipped (done)"] * 4
    assert all(" ... FAILED: UnknownModelError" in line for line in lines[4:]) and len(lines) == 6
    for model in MODELS:
        for seed in SEEDS:
            name = f"{model}_seed{seed}.json"
            assert (output / "runs" / name).read_bytes() == before[name]

    (output / "runs" / "Caser_seed2021.json").unlink()
    code, out, _ = _main(argv)
    lines = _progress(out)
    assert [line for line in lines if " done in " in line] == [line for line in lines if "Caser seed=2021" in line]
    assert len([line for line in lines if " done in " in line]) == 1 and out.count("skipped (done)") == 3
    again = _json(output / "runs" / "Caser_seed2021.json")
    assert again["status"] == "ok" and again["test_result"] == json.loads(before["Caser_seed2021.json"])["test_result"]


def test_runtime_failure_is_a_failed_row_and_the_next_model_still_runs(bench, tmp_path, monkeypatch):
    # GRU4Rec reads num_layers (torch refuses 0); Caser has no such key.
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(["--models=GRU4Rec,Caser", "--dataset=tiny", "--seeds=2020,",
                            f"--config_files={bench.protocol}", "--num_layers=0", "--output=out"])
    assert code == 1, err
    assert "[1/2] GRU4Rec seed=2020 ... FAILED: ValueError: num_layers must be greater than zero" in out
    assert "[2/2] Caser seed=2020 ... done in" in out
    log = (tmp_path / "out" / "logs" / "GRU4Rec_seed2020.log").read_text()
    assert "Traceback" in log and "num_layers must be greater than zero" in log
    failed = _json(tmp_path / "out" / "runs" / "GRU4Rec_seed2020.json")
    assert failed["status"] == "failed" and "ValueError: num_layers must be greater than zero" in failed["traceback"][-1]
    assert yaml.safe_load((tmp_path / "out" / "configs" / "GRU4Rec_seed2020.yaml").read_text())["num_layers"] == 0

    rows = {row["model"]: row for row in _json(tmp_path / "out" / "results.json")["rows"]}
    assert rows["GRU4Rec"]["status"] == "FAILED" and "num_layers must be greater than zero" in rows["GRU4Rec"]["note"]
    assert rows["Caser"]["status"] == "ok" and rows["Caser"]["n"] == 1
    assert rows["Caser"]["metrics"]["ndcg@10"]["std"] is None  # no sample std from one seed
    md_rows = {row[0]: row for row in _table((tmp_path / "out" / "results.md").read_text())}
    assert md_rows["Caser"][1] == "1/1" and not any("±" in cell for cell in md_rows["Caser"])
    assert "**Overrides (every run)**: `--num_layers=0`" in (tmp_path / "out" / "results.md").read_text()


def test_timeout_stops_a_run_and_marks_it_failed(bench, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = _main(["--models=GRU4Rec", "--dataset=tiny", "--seeds=5,", f"--config_files={bench.protocol}",
                          "--timeout=0.01", "--output=out"])
    assert code == 1 and "[1/1] GRU4Rec seed=5 ... FAILED: timed out after 0.01 s" in out
    assert _json(tmp_path / "out" / "runs" / "GRU4Rec_seed5.json")["status"] == "failed"
    assert _json(tmp_path / "out" / "results.json")["rows"][0]["status"] == "FAILED"


def test_report_only_regenerates_the_same_tables_from_the_run_files(bench, tmp_path):
    output = tmp_path / "copy"
    shutil.copytree(bench.output, output)
    for name in ("results.md", "results.csv", "results.json", "metrics.png", "valid_curves.png"):
        (output / name).unlink()
    code, out, _ = _main(["--report-only", f"--output={output}"])
    assert code == 0 and "written:" in out
    assert (output / "results.csv").read_text() == (bench.output / "results.csv").read_text()
    assert _json(output / "results.json")["rows"] == _json(bench.output / "results.json")["rows"]
    fresh, original = ((p / "results.md").read_text().splitlines() for p in (output, bench.output))
    assert [line for line in fresh if "Generated" not in line] == [line for line in original if "Generated" not in line]
    assert all((output / png).stat().st_size > 5000 for png in ("metrics.png", "valid_curves.png"))

    code, _, err = _main(["--report-only", f"--output={tmp_path / 'empty'}"])
    assert code == 2 and "holds no benchmark" in err


def test_truncated_run_and_benchmark_files_are_reported_then_redone(bench, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "results"
    shutil.copytree(bench.output, output)
    argv = [a if not a.startswith("--output=") else f"--output={output}" for a in bench.argv]
    run_file, manifest = output / "runs" / "Caser_seed2021.json", output / "benchmark.json"
    run_file.write_text(run_file.read_text()[:100])  # a crash mid-write (before files were written atomically)

    code, _, err = _main(["--report-only", f"--output={output}"])
    assert code == 0, err
    rows = {row["model"]: row for row in _json(output / "results.json")["rows"]}
    assert rows["Caser"]["status"] == "FAILED" and rows["Caser"]["n"] == 1
    assert "seed 2021: run file Caser_seed2021.json is unreadable" in rows["Caser"]["note"]
    assert "unreadable" in {row[0]: row for row in _table((output / "results.md").read_text())}["Caser"][-1]

    manifest.write_text(manifest.read_text()[:50])
    code, _, err = _main(["--report-only", f"--output={output}"])
    assert code == 2 and "benchmark.json is not a readable benchmark record" in err and "Re-run" in err

    code, out, err = _main(argv)
    assert code == 1, err  # NoSuchModel still fails
    assert "benchmark.json was unreadable" in out
    lines = _progress(out)
    assert [line for line in lines if " done in " in line] == [line for line in lines if "Caser seed=2021" in line]
    assert out.count("skipped (done)") == 3
    assert _json(run_file)["status"] == "ok" and _json(manifest)["models"] == [*MODELS, "NoSuchModel"]
    assert {row["model"]: row["status"] for row in _json(output / "results.json")["rows"]}["Caser"] == "ok"
    assert not list(output.rglob("*.tmp"))  # every file was written through a temporary file and renamed


def test_a_folder_with_other_settings_is_refused(bench, monkeypatch):
    monkeypatch.chdir(bench.root)
    code, out, err = _main([*bench.argv, "--epochs=2"])
    assert code == 2 and "other settings (overrides differ" in err and "--epochs=2" in err and out == ""


def test_missing_dataset_fails_fast_with_one_message(bench, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(["--models=GRU4Rec,Caser", "--dataset=nowhere", f"--config_files={bench.protocol}",
                            "--output=out"])
    assert code == 2 and out == ""
    assert err.startswith("error: Dataset 'nowhere' was not found") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seeds", ["--seeds=0", "--seeds=abc", "--seeds=1,1", "--seeds=-1,2", "--seeds=,"])
def test_bad_seeds_are_a_usage_error(seeds):
    code, out, err = _main(["--models=GRU4Rec", seeds])
    assert code == 2 and out == "" and err.startswith("error: --seeds")


def test_seeds_count_or_list():
    assert benchmark.parse_seeds("3") == [2020, 2021, 2022]
    assert benchmark.parse_seeds("1,2,3") == [1, 2, 3]
    assert benchmark.parse_seeds("7,") == [7]


def test_per_run_options_and_unknown_arguments_are_usage_errors():
    for argv, message in ((["--seed=3"], "use --seeds"), (["--model=SASRec"], "use --models"),
                          (["oops"], "Unrecognised argument 'oops'"), (["--timeout=-1"], "--timeout=-1")):
        code, _, err = _main(argv)
        assert code == 2 and message in err


def test_help():
    code, out, _ = _main(["--help"])
    assert code == 0 and "--seeds=N" in out and "--report-only" in out and "--timeout=SECONDS" in out


def test_parallel_jobs_and_per_model_config_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write_inter(tmp_path / "data", "tiny", cyclic_sequences())
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(yaml.safe_dump(tiny_config(data)))
    per_model = tmp_path / "per_model"
    per_model.mkdir()
    (per_model / "GRU4Rec.yaml").write_text("dropout_prob: 0.123\n")
    output = tmp_path / "results"
    code, out, err = _main(["--models=GRU4Rec,Caser", "--dataset=tiny", "--seeds=7,", "--jobs=2",
                            f"--config_files={protocol}", f"--model_configs={per_model}", f"--output={output}"])
    assert code == 0, err
    assert sorted(line.split(" ...")[0] for line in _progress(out)) == ["[1/2] GRU4Rec seed=7", "[2/2] Caser seed=7"]
    gru = yaml.safe_load((output / "configs" / "GRU4Rec_seed7.yaml").read_text())
    caser = yaml.safe_load((output / "configs" / "Caser_seed7.yaml").read_text())
    assert gru["dropout_prob"] == 0.123 and caser["dropout_prob"] != 0.123
    gru_run = _json(output / "runs" / "GRU4Rec_seed7.json")
    assert str((per_model / "GRU4Rec.yaml").resolve()) in gru_run["command"]
    assert "GRU4Rec.yaml" in (output / "results.md").read_text()  # named in the table's header
    assert _main(["--jobs=0"])[0] == 2 and _main([f"--model_configs={tmp_path / 'nope'}"])[0] == 2
