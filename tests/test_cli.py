"""run.py / the console script, end to end, and its errors on bad input."""

import subprocess
import sys
from pathlib import Path

import pytest

from recbole_selfattn import cli
from recbole_selfattn.data import download
from tests.conftest import cli_args, one_paragraph_error

REPO = Path(__file__).resolve().parents[1]


def _args(data_path, **overrides):
    return cli_args(data_path, state="INFO", **overrides)


def test_help_lists_plugin_and_builtin_models(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("AttRec", "MTAW", "MIND", "SASRec", "Caser", "GRU4Rec", "--config_files"):
        assert name in out


def test_parse_args_config_files_forms():
    _, _, files, rest = cli.parse_args(["--config_files=a.yaml b.yaml", "--epochs=2"])
    assert files == ["a.yaml", "b.yaml"] and rest == ["--epochs=2"]
    model, dataset, files, _ = cli.parse_args(["--model=MIND", "--config_files=a.yaml", "b.yaml"])
    assert (model, dataset, files) == ("MIND", "ml-100k", ["a.yaml", "b.yaml"])


@pytest.mark.parametrize("model", ["SASRec", "Caser", "GRU4Rec"])
def test_baselines_train_and_test_through_main(model, tiny_data, capsys):
    assert cli.main([f"--model={model}", "--dataset=tiny", *_args(tiny_data)]) == 0
    out = capsys.readouterr().out
    assert "test result" in out and "ndcg@10" in out and "recall@20" in out


def test_run_py_as_a_script_with_config_files(tiny_data, tmp_path):
    conf = tmp_path / "extra.yaml"
    conf.write_text("dropout_prob: 0.123\n")
    proc = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "--model=GRU4Rec", "--dataset=tiny", f"--config_files={conf}",
         *_args(tiny_data)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test result" in proc.stdout and "\nrecall@5 " in proc.stdout  # the metrics table
    (log_file,) = (tmp_path / "log" / "GRU4Rec").glob("*.log")
    assert "dropout_prob = 0.123" in log_file.read_text()  # RecBole's logged config, in the log file only
    assert "dropout_prob" not in proc.stderr


def test_console_script_help():
    script = Path(sys.executable).parent / "recbole-selfattn"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "AttRec" in proc.stdout


def test_unknown_model(capsys):
    assert cli.main(["--model=NoSuchModel"]) == 2
    assert "Unknown model 'NoSuchModel'" in one_paragraph_error(capsys)


def test_dataset_neither_present_nor_downloadable(tiny_data, capsys):
    assert cli.main(["--model=GRU4Rec", "--dataset=nosuchdata", *_args(tiny_data)]) == 2
    err = one_paragraph_error(capsys)
    assert "Dataset 'nosuchdata' was not found" in err and "not one of RecBole's downloadable" in err


def test_download_failure_offline(tiny_data, capsys, monkeypatch):
    def offline(url, folder):
        raise OSError("Name or service not known")

    monkeypatch.setattr(download, "download_url", offline)
    assert cli.main(["--model=GRU4Rec", "--dataset=ml-1m", *_args(tiny_data)]) == 2
    err = one_paragraph_error(capsys)
    assert "are you offline?" in err and "recbole_selfattn.data.convert ml-1m" in err


@pytest.mark.parametrize(
    "content, expected",
    [
        ("user_id\titem_id\ttimestamp\nu1\ti1\t1\n", "malformed header column 'user_id'"),
        ("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\n", "line 2: 2 values for 3 header columns"),
        ("user_id:token\titem_id:tokn\ttimestamp:float\nu1\ti1\t1\n", "malformed header column 'item_id:tokn'"),
        ("user_id:token\tmovie:token\ttimestamp:float\nu1\ti1\t1\n", "has no column item_id"),
        ("user_id:token\titem_id:token\ttimestamp:float\n", "has a header but no rows"),
    ],
)
def test_malformed_inter_file(content, expected, tiny_data, capsys):
    (tiny_data / "tiny" / "tiny.inter").write_text(content)
    assert cli.main(["--model=GRU4Rec", "--dataset=tiny", *_args(tiny_data)]) == 2
    assert expected in one_paragraph_error(capsys)


@pytest.mark.parametrize(
    "option, expected",
    [
        ("--learning_rate=-1", "learning_rate=-1 is invalid"),
        ("--epochs=abc", "epochs='abc' is invalid"),
        ("--train_batch_size=0", "train_batch_size=0 is invalid"),
        ("--valid_metric=NDCG@15", "valid_metric 'NDCG@15' is not among"),
        ("--metrics=['Foo']", "Invalid configuration"),
        ("--config_files=missing.yaml", "Config file 'missing.yaml' does not exist"),
        ("stray", "Unrecognised argument 'stray'"),
        ("--seed=abc", "seed='abc' is invalid: seed must be an integer"),
        ("--nproc=abc", "nproc='abc' is invalid: nproc must be an integer >= 1"),
        ("--world_size=0", "world_size=0 is invalid"),
        ("--port=abc", "port='abc' is invalid: port must be a TCP port number"),
        ("--offset=-1", "offset=-1 is invalid"),
        ("--eval_step=-1", "eval_step=-1 is invalid"),
        ("--topk=[5,'a']", "topk=[5, 'a'] is invalid: topk must be an integer >= 1 or a list of them"),
        ("--topk=0", "topk=0 is invalid"),
        ("--learning_rate=1e38", "learning_rate=1e+38 is invalid: learning_rate must be a number > 0 and <= 10"),
        ("--weight_decay=-0.1", "weight_decay=-0.1 is invalid"),
        ("--clip_grad_norm=5", "clip_grad_norm=5 is invalid: clip_grad_norm must be a dict"),
        ("--reproducibility=no", "reproducibility='no' is invalid: reproducibility must be True or False"),
        ("--cpu_onednn=sometimes", "cpu_onednn='sometimes' is invalid: cpu_onednn must be True or False"),
        ("--fast_path=yes", "fast_path='yes' is invalid: fast_path must be True or False"),
    ],
)
def test_invalid_config_value(option, expected, tiny_data, capsys):
    key = option[2:].split("=")[0]
    args = [a for a in _args(tiny_data) if not a.startswith(f"--{key}=")]
    assert cli.main(["--model=GRU4Rec", "--dataset=tiny", *args, option]) == 2
    assert expected in one_paragraph_error(capsys)


@pytest.mark.parametrize(
    "content, expected",
    [
        ("epochs: 1\ntopk: [5, 10\n", "Config file '{file}', line 3, column 1 is not valid YAML"),
        ("epochs: 1\n  learning_rate: 0.1\n", "Config file '{file}', line 2, column 16 is not valid YAML"),
        ("- epochs\n- 1\n", "Config file '{file}' holds a list, not `key: value` lines"),
    ],
)
def test_bad_config_file_is_named_with_its_line(content, expected, tiny_data, tmp_path, capsys):
    conf = tmp_path / "bad.yaml"
    conf.write_text(content)
    assert cli.main(["--model=GRU4Rec", "--dataset=tiny", f"--config_files={conf}", *_args(tiny_data)]) == 2
    assert expected.format(file=conf) in one_paragraph_error(capsys)


def test_empty_config_file_is_accepted(tiny_data, tmp_path, capsys):
    conf = tmp_path / "empty.yaml"
    conf.write_text("# nothing set yet\n")
    assert cli.main(["--model=GRU4Rec", "--dataset=tiny", f"--config_files={conf}", *_args(tiny_data)]) == 0


def test_config_file_that_is_a_directory(tiny_data, tmp_path, capsys):
    assert cli.main(["--model=GRU4Rec", "--dataset=tiny", f"--config_files={tmp_path}", *_args(tiny_data)]) == 2
    err = one_paragraph_error(capsys)
    assert f"Config file '{tmp_path}' is a directory" in err and "does not exist" not in err


def test_dataset_error_comes_before_the_config_log(tiny_data, tmp_path):
    """With state=INFO RecBole logs ~100 lines of config: a bad dataset must be
    reported before them, as the first thing the user reads."""
    (tiny_data / "tiny" / "tiny.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\n")
    proc = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "--model=GRU4Rec", "--dataset=tiny", *_args(tiny_data)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert lines[0].startswith("error: ") and "line 2: 2 values for 3 header columns" in lines[0], lines[:5]
    assert "learning_rate" not in proc.stderr  # no config dump at all
