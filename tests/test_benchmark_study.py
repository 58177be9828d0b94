"""A study (``--variants``): one model under several settings, one row each,
chosen on validation, tested once; end to end on the tiny dataset."""

import yaml

from recbole_selfattn.benchmark import records
from tests.benchmark_helpers import load_json, markdown_table, run_main, tiny_protocol

ROWS = ["GRU4Rec", "GRU4Rec[hidden_size=8]", "GRU4Rec[dropout_prob=0.5,num_layers=2]"]


def test_a_study_runs_each_variant_as_a_row_and_reports_test_metrics_for_the_chosen_row_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_protocol(tmp_path)
    code, out, err = run_main(["--models=GRU4Rec", "--variants=hidden_size=8;dropout_prob=0.5,num_layers=2",
                               "--dataset=tiny", "--seeds=2020,", "--config_files=tiny.yaml", "--output=out"])
    assert code == 0, err
    runs = {row: load_json(records.run_paths(tmp_path / "out", row, 2020).run) for row in ROWS}
    configs = {row: yaml.safe_load(records.run_paths(tmp_path / "out", row, 2020).config.read_text()) for row in ROWS}
    assert [configs[row]["hidden_size"] for row in ROWS] == [configs["GRU4Rec"]["hidden_size"], 8,
                                                            configs["GRU4Rec"]["hidden_size"]]
    assert (configs[ROWS[2]]["dropout_prob"], configs[ROWS[2]]["num_layers"]) == (0.5, 2)
    assert configs["GRU4Rec"]["hidden_size"] != 8 and configs["GRU4Rec"]["num_layers"] != 2
    assert runs[ROWS[2]]["command"].endswith("--dropout_prob=0.5 --num_layers=2 --seed=2020")

    valid = {row: runs[row]["best_valid_result"]["ndcg@10"] for row in ROWS}
    chosen = max(valid, key=valid.get)
    summary = load_json(tmp_path / "out" / "results.json")
    assert summary["benchmark"]["chosen"] == chosen
    assert {row["model"]: bool(row["metrics"]) for row in summary["rows"]} == {row: row == chosen for row in ROWS}

    md = (tmp_path / "out" / "results.md").read_text()
    study, test = md.split("Test metrics of the chosen row")
    table = markdown_table(study)
    assert [row[0] for row in table[1:]] == ROWS
    column = table[0].index("valid NDCG@10")
    assert [row[column] for row in table[1:]] == [f"{valid[row]:.4f}" for row in ROWS]
    assert [row[table[0].index("Chosen")] for row in table[1:]] == ["**chosen**" if r == chosen else "" for r in ROWS]
    assert "Recall@10" not in table[0] and "NDCG@10" not in table[0]  # no test column for every row
    assert f", {chosen} (reported once)" in test
    assert f"{runs[chosen]['test_result']['ndcg@10']:.4f}" in markdown_table(test)[1]

    # a row not yet run: the choice is provisional and no test metric is shown
    unrun = next(row for row in ROWS if row != chosen)
    records.run_paths(tmp_path / "out", unrun, 2020).run.unlink()
    assert run_main(["--report-only", "--output=out"])[0] == 0
    md = (tmp_path / "out" / "results.md").read_text()
    assert "Test metrics" not in md and f"rows have runs not yet made ({unrun})" in md
    table = markdown_table(md)
    assert [row[table[0].index("Chosen")] for row in table[1:]] == ["leading" if r == chosen else "" for r in ROWS]
    assert not any(row["metrics"] for row in load_json(tmp_path / "out" / "results.json")["rows"])


def test_variants_need_one_model_and_key_value_overrides():
    code, _, err = run_main(["--models=GRU4Rec,Caser", "--variants=hidden_size=8"])
    assert code == 2 and "--variants studies one model" in err
    code, _, err = run_main(["--models=GRU4Rec", "--variants=hidden_size"])
    assert code == 2 and "KEY=VALUE" in err


def test_a_study_grows_by_new_variants_but_never_loses_one_and_other_models_configs_do_not_block_it(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_protocol(tmp_path, epochs=1)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "GRU4Rec.yaml").write_text("hidden_size: 16\n")
    (tmp_path / "models" / "Caser.yaml").write_text("nv: 2\n")
    argv = ["--models=GRU4Rec", "--dataset=tiny", "--seeds=2020,", "--config_files=tiny.yaml",
            "--model_configs=models", "--output=out"]
    code, out, err = run_main([*argv, "--variants=hidden_size=8"])
    assert code == 0, err
    assert out.count(" done in ") == 2

    (tmp_path / "models" / "Caser.yaml").write_text("nv: 4\n")  # a model this study does not run
    code, out, err = run_main([*argv, "--variants=hidden_size=8;num_layers=2"])
    assert code == 0, err
    assert out.count("skipped (done)") == 2 and out.count(" done in ") == 1  # only the new row ran
    md = (tmp_path / "out" / "results.md").read_text()
    assert [row[0] for row in markdown_table(md.split("Test metrics")[0])[1:]] == [
        "GRU4Rec", "GRU4Rec[hidden_size=8]", "GRU4Rec[num_layers=2]"]
    assert "--variants=hidden_size=8;num_layers=2" in md  # the header's command re-runs every row

    code, out, err = run_main([*argv, "--variants=num_layers=2"])
    assert code == 2 and "hidden_size=8" in err and "repeat the earlier ones" in err and out == ""
    (tmp_path / "models" / "GRU4Rec.yaml").write_text("hidden_size: 32\n")  # the studied model's own file
    code, out, err = run_main([*argv, "--variants=hidden_size=8;num_layers=2"])
    assert code == 2 and "model_configs differ" in err and out == ""
