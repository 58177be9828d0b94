"""The benchmark's command line: options, usage errors, help (no run is started)."""

import pytest

from recbole_selfattn.benchmark import records
from recbole_selfattn.benchmark.cli import parse_seeds
from tests.benchmark_helpers import run_main


@pytest.mark.parametrize("seeds", ["--seeds=0", "--seeds=abc", "--seeds=1,1", "--seeds=-1,2", "--seeds=,"])
def test_bad_seeds_are_a_usage_error(seeds):
    code, out, err = run_main(["--models=GRU4Rec", seeds])
    assert code == 2 and out == "" and err.startswith("error: --seeds")


def test_seeds_count_or_list():
    assert parse_seeds("3") == [2020, 2021, 2022]
    assert parse_seeds("1,2,3") == [1, 2, 3]
    assert parse_seeds("7,") == [7]


def test_per_run_options_and_unknown_arguments_are_usage_errors():
    for argv, message in ((["--seed=3"], "use --seeds"), (["--model=SASRec"], "use --models"),
                          (["oops"], "Unrecognised argument 'oops'"), (["--timeout=-1"], "--timeout=-1")):
        code, _, err = run_main(argv)
        assert code == 2 and message in err


def test_help():
    code, out, _ = run_main(["--help"])
    assert code == 0 and "--seeds=N" in out and "--report-only" in out and "--timeout=SECONDS" in out


def test_rerun_command_is_relative_to_the_folder_the_benchmark_ran_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ("GRU4Rec", "tiny", ["tiny.yaml"], ["--epochs=3"], 7)
    assert records.rerun_command(*args) == "recbole-selfattn --model=GRU4Rec --dataset=tiny --config_files=tiny.yaml --epochs=3 --seed=7"
    (tmp_path / "run.py").write_text("")  # a checkout's root
    assert records.rerun_command(*args).startswith("python run.py --model=GRU4Rec ")
