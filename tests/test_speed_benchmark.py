"""Smoke test of ``benchmarks/speed.py``: it runs every model for 2 batches on a
tiny generated dataset and writes a table with the promised columns and rows.
No timing is asserted (timings are the lead's committed table)."""

from pathlib import Path

import pytest

from tests.benchmark_helpers import load_script
from tests.conftest import cyclic_sequences, write_inter


def test_speed_table_has_every_model_and_column(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_inter(tmp_path / "data", "tiny", cyclic_sequences())
    speed = load_script("speed")
    argv = [
        "--dataset=tiny", "--batches=2", "--warmup=1", "--rounds=2", "--mm_size=64", "--output=out",
        f"--data_path={tmp_path / 'data'}", "--train_batch_size=64", "--embedding_size=16", "--hidden_size=16",
        "--MAX_ITEM_LIST_LENGTH=10", "--epochs=1",
    ]
    path = speed.main(argv)
    assert path == Path("out") / "tiny.md"
    text = path.read_text()
    header, rows = text.split("\n| model")[0], text.split("\n| model")[1].splitlines()[2:]
    assert "`python benchmarks/speed.py --dataset=tiny --batches=2" in header
    assert str(tmp_path) not in text  # relative paths only: --data_path=data
    assert "--data_path=data" in header
    for word in ("machine:", "cores", "torch", "RecBole", "GFLOP/s", "2 timed training batches"):
        assert word in header, word
    columns = [c.strip() for c in text.split("\n| model")[1].splitlines()[0].strip(" |").split("|")]
    assert ["model"] + columns == list(speed.COLUMNS)
    cells = {row.split("|")[1].strip(): [c.strip() for c in row.strip(" |").split("|")] for row in rows if row}
    assert list(cells) == list(speed.DEFAULT_MODELS)
    assert {row[1] for row in cells.values()} == {"none"}  # the default option
    assert cells["SASRec"][6] == "1.00"  # ratios are to SASRec
    for name in speed.DEFAULT_MODELS:
        assert cells[name][7] == "—"  # RecBole's own SASRec (option recbole) was not timed
        assert all(c != "—" for c in cells[name][8:-1]), name  # a FLOP floor for every model
        assert float(cells[name][11].replace(",", "")) > 0  # thousands are comma-separated
    assert {row[12] for row in cells.values()} == {"—"}  # no validation runs asked for


def test_speed_table_of_options_with_validation_runs(tmp_path, monkeypatch):
    """Every model under every option, ratios within an option and to the same
    model without options, and the best validation score of a short run."""
    monkeypatch.chdir(tmp_path)
    write_inter(tmp_path / "data", "tiny", cyclic_sequences())
    speed = load_script("speed")
    argv = [
        "--dataset=tiny", "--models=MTAW,SASRec", "--options=none,recbole,bf16", "--batches=1", "--warmup=0",
        "--rounds=1", "--mm_size=64", "--output=out", "--valid_epochs=1", "--valid_models=MTAW",
        f"--data_path={tmp_path / 'data'}", "--train_batch_size=64", "--embedding_size=16", "--hidden_size=16",
        "--MAX_ITEM_LIST_LENGTH=10",
    ]
    text = speed.main(argv).read_text()
    assert "bf16" in text.split("\n| model")[0] and "load average" in text
    rows = [[c.strip() for c in row.strip(" |").split("|")] for row in text.split("\n| model")[1].splitlines()[2:]]
    assert [row[:2] for row in rows] == [[m, o] for m in ("MTAW", "SASRec") for o in ("none", "recbole", "bf16")]
    assert rows[3][6] == rows[4][6] == rows[5][6] == "1.00"  # against SASRec under the same option
    assert rows[4][7] == "1.00"  # RecBole's own SASRec against itself
    assert rows[0][8] == rows[3][8] == "1.00"  # against the same model without options
    assert all(0 <= float(rows[i][12]) <= 1 for i in range(3)) and rows[3][12] == "—"


def test_unknown_option_is_refused(capsys):
    speed = load_script("speed")
    with pytest.raises(SystemExit) as exit_info:
        speed.parse_args(["--options=none,fp8"])
    assert exit_info.value.code == 2 and "unknown --options ['fp8']" in capsys.readouterr().err
