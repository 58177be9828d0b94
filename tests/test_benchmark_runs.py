"""Benchmark runs that fail, time out or run in parallel, on the tiny dataset
(each test its own small benchmark, GRU4Rec and Caser, one seed)."""

import os
from pathlib import Path

import yaml

import recbole_selfattn
from tests.benchmark_helpers import load_json, machine_paths_in, markdown_table, progress, run_main, tiny_protocol


def test_runtime_failure_is_a_failed_row_and_the_next_model_still_runs(tmp_path, monkeypatch):
    # GRU4Rec reads num_layers (torch refuses 0); Caser has no such key.
    monkeypatch.chdir(tmp_path)
    protocol = tiny_protocol(tmp_path)
    code, out, err = run_main(["--models=GRU4Rec,Caser", "--dataset=tiny", "--seeds=2020,",
                            f"--config_files={protocol}", "--num_layers=0", "--output=out"])
    assert code == 1, err
    assert "[1/2] GRU4Rec seed=2020 ... FAILED: ValueError: num_layers must be greater than zero" in out
    assert "[2/2] Caser seed=2020 ... done in" in out
    log = (tmp_path / "out" / "logs" / "GRU4Rec_seed2020.log").read_text()
    assert "Traceback" in log and "num_layers must be greater than zero" in log
    failed = load_json(tmp_path / "out" / "runs" / "GRU4Rec_seed2020.json")
    assert failed["status"] == "failed" and "ValueError: num_layers must be greater than zero" in failed["traceback"][-1]
    assert yaml.safe_load((tmp_path / "out" / "configs" / "GRU4Rec_seed2020.yaml").read_text())["num_layers"] == 0

    rows = {row["model"]: row for row in load_json(tmp_path / "out" / "results.json")["rows"]}
    assert rows["GRU4Rec"]["status"] == "FAILED" and "num_layers must be greater than zero" in rows["GRU4Rec"]["note"]
    assert rows["Caser"]["status"] == "ok" and rows["Caser"]["n"] == 1
    assert rows["Caser"]["metrics"]["ndcg@10"]["std"] is None  # no sample std from one seed
    md_rows = {row[0]: row for row in markdown_table((tmp_path / "out" / "results.md").read_text())}
    assert md_rows["Caser"][1] == "1/1" and not any("±" in cell for cell in md_rows["Caser"])
    assert "**Overrides (every run)**: `--num_layers=0`" in (tmp_path / "out" / "results.md").read_text()
    repo = Path(recbole_selfattn.__file__).resolve().parents[1]
    assert machine_paths_in(tmp_path / "out", repo, tmp_path) == []  # the traceback's paths too


def test_timeout_stops_a_run_and_marks_it_failed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    protocol = tiny_protocol(tmp_path)
    code, out, _ = run_main(["--models=GRU4Rec", "--dataset=tiny", "--seeds=5,", f"--config_files={protocol}",
                          "--timeout=0.01", "--output=out"])
    assert code == 1 and "[1/1] GRU4Rec seed=5 ... FAILED: timed out after 0.01 s" in out
    assert load_json(tmp_path / "out" / "runs" / "GRU4Rec_seed5.json")["status"] == "failed"
    assert load_json(tmp_path / "out" / "results.json")["rows"][0]["status"] == "FAILED"


def test_missing_dataset_fails_fast_with_one_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    protocol = tiny_protocol(tmp_path)
    code, out, err = run_main(["--models=GRU4Rec,Caser", "--dataset=nowhere", f"--config_files={protocol}",
                            "--output=out"])
    assert code == 2 and out == ""
    assert err.startswith("error: Dataset 'nowhere' was not found") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_parallel_jobs_and_per_model_config_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    protocol = tiny_protocol(tmp_path)
    per_model = tmp_path / "per_model"
    per_model.mkdir()
    (per_model / "GRU4Rec.yaml").write_text("dropout_prob: 0.123\n")
    output = tmp_path / "results"
    code, out, err = run_main(["--models=GRU4Rec,Caser", "--dataset=tiny", "--seeds=7,", "--jobs=2",
                            f"--config_files={protocol}", f"--model_configs={per_model}", f"--output={output}"])
    assert code == 0, err
    assert sorted(line.split(" ...")[0] for line in progress(out)) == ["[1/2] GRU4Rec seed=7", "[2/2] Caser seed=7"]
    gru = yaml.safe_load((output / "configs" / "GRU4Rec_seed7.yaml").read_text())
    caser = yaml.safe_load((output / "configs" / "Caser_seed7.yaml").read_text())
    assert gru["dropout_prob"] == 0.123 and caser["dropout_prob"] != 0.123
    gru_run = load_json(output / "runs" / "GRU4Rec_seed7.json")
    assert "--config_files=tiny.yaml,per_model/GRU4Rec.yaml" in gru_run["command"]
    assert "GRU4Rec.yaml" in (output / "results.md").read_text()  # named in the table's header
    # the two runs share the cores instead of each taking all of them
    threads = max(1, os.cpu_count() // 2)
    assert gru_run["torch_threads"] == threads == load_json(output / "runs" / "Caser_seed7.json")["torch_threads"]
    assert f"torch threads per run {threads}" in (output / "results.md").read_text()
    assert run_main(["--jobs=0"])[0] == 2 and run_main([f"--model_configs={tmp_path / 'nope'}"])[0] == 2
