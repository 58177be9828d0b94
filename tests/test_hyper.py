"""run_hyper.py / recbole_selfattn.hyper: .hyper parsing, the hyperopt search
(grid, random, bayes) through the plugin pipeline, output file, and errors."""

import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

import recbole
from recbole_selfattn import Config, get_model, hyper, quick_start
from recbole_selfattn.config import properties_dir
from recbole_selfattn.data import create_dataset, data_preparation
from recbole_selfattn.errors import NonFiniteLossError, UsageError
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[1]
PLUGIN_MODELS = ("AttRec", "MTAW", "MIND")


def write(path, text):
    path.write_text(text)
    return path


def overrides(data_path, **extra):
    config = tiny_config(data_path, **extra)
    config.pop("load_col")  # the protocol loads these columns already
    return [f"--{key}={value}" for key, value in config.items()]


def one_paragraph_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


# ---------------------------------------------------------------- .hyper files


def model_yaml(model):
    path = properties_dir() / "model" / f"{model}.yaml"
    if not path.is_file():
        pytest.skip(f"{model}'s property file does not exist yet")
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("model", PLUGIN_MODELS)
def test_shipped_hyper_file_searches_model_keys_on_a_grid(model):
    model_keys = model_yaml(model)
    recbole_keys = yaml.safe_load((Path(recbole.__file__).parent / "properties" / "overall.yaml").read_text())
    params = hyper.read_params_file(hyper.default_params_file(model))
    names = [p.name for p in params]
    assert len(names) == 4 and names[0] == "learning_rate"
    for name in names:
        assert name in model_keys or name in recbole_keys, f"{model}.hyper searches unknown key {name}"
    assert [name for name in names if name not in recbole_keys], "a model's own parameter must be searched"
    assert all(p.kind == "choice" and len(p.values) >= 2 for p in params)
    config = Config(model, "ml-100k", cmd_args=[])
    hyper.check_params(params, config, [], "exhaustive")  # the default search accepts the file


@pytest.mark.parametrize("model", PLUGIN_MODELS)
def test_every_shipped_value_is_accepted_by_the_model(model, tiny_data):
    """Each grid value passes the model's own range checks (``require``) under
    the shared protocol (MAX_ITEM_LIST_LENGTH from properties/overall.yaml)."""
    model_yaml(model)
    base = tiny_config(tiny_data)
    base.pop("MAX_ITEM_LIST_LENGTH")
    config = Config(model, "tiny", config_dict=base, cmd_args=[])
    dataset = data_preparation(config, create_dataset(config))[0]._dataset
    model_class = get_model(model)
    for param in hyper.read_params_file(hyper.default_params_file(model)):
        for value in param.values:
            config = Config(model, "tiny", config_dict={**base, param.name: value}, cmd_args=[])
            assert config[param.name] == value
            model_class(config, dataset)  # raises ConfigError on a rejected value


def test_parse_every_type_and_sample_the_hyperopt_space(tmp_path):
    from hyperopt.pyll import stochastic

    path = write(tmp_path / "all.hyper", "\n".join([
        "# a comment, then a blank line",
        "",
        "embedding_size choice [32, 64]",
        "loss_type choice ['CE','BPR']",
        "dropout_prob uniform 0.1,0.5",
        "MAX_ITEM_LIST_LENGTH quniform 5,20,5",
        "reg_weight quniform 0.0,1.0,0.25",
        "learning_rate loguniform -8,0",
    ]))
    params = {p.name: p for p in hyper.read_params_file(path)}
    assert params["embedding_size"] == hyper.Param("embedding_size", "choice", (32, 64))
    assert params["loss_type"].values == ("CE", "BPR")
    assert params["dropout_prob"].values == (0.1, 0.5)
    assert params["MAX_ITEM_LIST_LENGTH"].integer and not params["reg_weight"].integer
    assert params["learning_rate"].values == (-8.0, 0.0)
    space = hyper.hyperopt_space(list(params.values()))
    for seed in range(20):
        sample = stochastic.sample(space, rng=np.random.default_rng(seed))
        assert sample["embedding_size"] in (32, 64) and sample["loss_type"] in ("CE", "BPR")
        assert 0.1 <= sample["dropout_prob"] <= 0.5
        assert type(sample["MAX_ITEM_LIST_LENGTH"]) is int and sample["MAX_ITEM_LIST_LENGTH"] in (5, 10, 15, 20)
        assert sample["reg_weight"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert math.exp(-8) <= sample["learning_rate"] <= 1.0


@pytest.mark.parametrize("line, message", [
    ("learning_rate", "is not 'NAME TYPE VALUE'"),
    ("learning_rate gaussian 0,1", "unknown type 'gaussian'"),
    ("learning_rate choice []", "non-empty list"),
    ("learning_rate choice [0.1,", "non-empty list"),
    ("learning_rate choice 0.1", "non-empty list"),
    ("learning_rate uniform 1", "needs low,high numbers"),
    ("learning_rate uniform 1,0", "low < high"),
    ("learning_rate loguniform a,b", "needs low,high numbers"),
    ("L quniform 1,5", "needs low,high,q numbers"),
    ("L quniform 1,5,0", "step q of 'L' must be > 0"),
])
def test_malformed_line_names_file_and_line(tmp_path, line, message):
    path = write(tmp_path / "bad.hyper", f"omega choice [0.2,0.4]\n{line}\n")
    with pytest.raises(UsageError, match="line 2") as error:
        hyper.read_params_file(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_duplicate_and_empty_files_are_rejected(tmp_path):
    with pytest.raises(UsageError, match="'omega' is searched twice"):
        hyper.read_params_file(write(tmp_path / "dup.hyper", "omega choice [0.2]\nomega uniform 0,1\n"))
    with pytest.raises(UsageError, match="defines no parameter"):
        hyper.read_params_file(write(tmp_path / "empty.hyper", "# nothing\n"))


def test_check_params_rejects_typos_overridden_keys_and_non_grids(tmp_path):
    config = Config("AttRec", "ml-100k", cmd_args=[])
    grid = [hyper.Param("omega", "choice", (0.2, 0.4))]
    with pytest.raises(UsageError, match="'omgea' is not a config key of AttRec"):
        hyper.check_params([hyper.Param("omgea", "choice", (0.2,))], config, [], "exhaustive")
    with pytest.raises(UsageError, match="--omega is given on the command line and also searched"):
        hyper.check_params(grid, config, ["--epochs=1", "--omega=0.3"], "exhaustive")
    ranged = [*grid, hyper.Param("margin", "uniform", (0.1, 1.0))]
    with pytest.raises(UsageError, match="Exhaustive search needs a grid, but margin is sampled"):
        hyper.check_params(ranged, config, [], "exhaustive")
    hyper.check_params(ranged, config, ["--omegas=1"], "random")


def test_tune_space_keeps_hyperopt_meaning():
    calls = {}
    fake_tune = SimpleNamespace(**{
        name: (lambda name: lambda *args: calls.setdefault(name, []).append(args) or (name, *args))(name)
        for name in ("choice", "grid_search", "uniform", "loguniform", "quniform", "qrandint")
    })
    params = [
        hyper.Param("embedding_size", "choice", (32, 64)),
        hyper.Param("dropout_prob", "uniform", (0.1, 0.5)),
        hyper.Param("learning_rate", "loguniform", (-8.0, 0.0)),
        hyper.Param("L", "quniform", (2.0, 6.0, 1.0)),
        hyper.Param("reg_weight", "quniform", (0.0, 1.0, 0.25)),
    ]
    space = hyper.tune_space(params, fake_tune, grid=False)
    assert space["embedding_size"] == ("choice", [32, 64])
    assert space["dropout_prob"] == ("uniform", 0.1, 0.5)
    assert space["learning_rate"] == ("loguniform", math.exp(-8), 1.0)  # bounds are exponents of e
    assert space["L"] == ("qrandint", 2, 6, 1) and all(type(v) is int for v in space["L"][1:])
    assert space["reg_weight"] == ("quniform", 0.0, 1.0, 0.25)
    assert hyper.tune_space(params[:1], fake_tune, grid=True)["embedding_size"] == ("grid_search", [32, 64])


# ---------------------------------------------------------------- HyperTuning


class FakeObjective:
    """Scores a point without training: valid score = 1 / (1 + |lr - 0.01|) + b-bonus;
    ``diverge`` points raise NonFiniteLossError like a diverging run."""

    def __init__(self, diverge=()):
        self.calls, self.diverge = [], set(diverge)

    def __call__(self, config_dict, config_file_list=None):
        point = (config_dict["learning_rate"], config_dict.get("embedding_size"))
        self.calls.append(point)
        if point in self.diverge:
            raise NonFiniteLossError(1, 0, float("nan"))
        score = 1 / (1 + abs(point[0] - 0.01)) + (0.5 if point[1] == 64 else 0.0)
        return {"model": "Fake", "best_valid_score": score, "valid_score_bigger": True,
                "best_valid_result": {"ndcg@10": score}, "test_result": {"ndcg@10": score / 2},
                "valid_metric": "ndcg@10", "seconds": 0.0}


GRID = [hyper.Param("learning_rate", "choice", (0.1, 0.01, 0.001)), hyper.Param("embedding_size", "choice", (32, 64))]


def test_grid_search_visits_each_point_once_and_survives_a_diverging_trial(tmp_path, capsys):
    objective = FakeObjective(diverge={(0.1, 64)})
    tuner = hyper.HyperTuning(objective, GRID, algo="exhaustive", max_evals=100)
    assert tuner.max_evals == 6  # the grid size, below max_evals
    tuner.run()
    assert sorted(objective.calls) == sorted((lr, e) for lr in (0.1, 0.01, 0.001) for e in (32, 64))
    assert tuner.best_params == {"learning_rate": 0.01, "embedding_size": 64}
    assert "error" in tuner.params2result["learning_rate:0.1, embedding_size:64"]
    out = capsys.readouterr().out
    assert "[trial 6/6]" in out and "learning_rate:0.1, embedding_size:64: failed, Training stopped" in out
    tuner.export_result(tmp_path / "out.result")
    text = (tmp_path / "out.result").read_text()
    assert text.count("Valid result:\n") == 5 and "Failed: Training stopped: the loss is nan" in text
    assert text.split("Best params: ")[1].startswith("learning_rate:0.01, embedding_size:64\n")
    assert "Best valid result:\nndcg@10 : 1.5\nBest test result:\nndcg@10 : 0.75\n" in text


def test_max_evals_caps_the_grid():
    objective = FakeObjective()
    tuner = hyper.HyperTuning(objective, GRID, algo="exhaustive", max_evals=4)
    tuner.run()
    assert len(objective.calls) == len(set(objective.calls)) == 4


@pytest.mark.parametrize("algo", ["random", "bayes"])
def test_random_and_bayes_search_are_seeded(algo):
    space = [hyper.Param("learning_rate", "loguniform", (-8.0, 0.0))]

    def calls(seed):
        objective = FakeObjective()
        hyper.HyperTuning(objective, space, algo=algo, max_evals=5, early_stop=100, seed=seed).run()
        return objective.calls

    first = calls(1)
    assert len(first) == 5 and all(type(lr) is float and math.exp(-8) <= lr <= 1 for lr, _ in first)
    assert calls(1) == first and calls(2) != first


def test_grid_is_drawn_in_a_seeded_random_order():
    """Like RecBole's exhaustive search, so early stopping samples the whole grid."""
    def order(seed):
        objective = FakeObjective()
        hyper.HyperTuning(objective, GRID, algo="exhaustive", seed=seed).run()
        return objective.calls

    rows = [(lr, e) for lr in (0.1, 0.01, 0.001) for e in (32, 64)]
    assert order(1) == order(1) and sorted(order(1)) == sorted(rows)
    assert len({tuple(order(seed)) for seed in range(4)}) > 1  # the seed, not the row order, decides


# ---------------------------------------------------------------- end to end


def test_exhaustive_search_trains_each_learning_rate_and_names_the_best(tiny_data, tmp_path, monkeypatch, capsys):
    trained, run = [], quick_start.run

    def spy(*args, **kwargs):
        result = run(*args, **kwargs)
        trained.append((result["config"]["model"], result["config"]["learning_rate"], result["best_valid_score"]))
        return result

    monkeypatch.setattr(quick_start, "run", spy)
    params = write(tmp_path / "lr.hyper", "learning_rate choice [0.01,0.001]\n")
    output = tmp_path / "GRU4Rec.result"
    argv = ["--model=GRU4Rec", "--dataset=tiny", f"--params_file={params}", f"--output_file={output}",
            *overrides(tiny_data, epochs=2)]
    assert hyper.main(argv) == 0
    assert sorted(lr for _, lr, _ in trained) == [0.001, 0.01] and {m for m, _, _ in trained} == {"GRU4Rec"}
    assert trained[0][2] != trained[1][2]  # the two learning rates really trained differently
    best_lr = max(trained, key=lambda t: t[2])[1]
    text = output.read_text()
    assert text.startswith("learning_rate:") and text.count("Test result:\nrecall@5 : ") == 2
    assert f"Best params: learning_rate:{best_lr}\n" in text
    out = capsys.readouterr().out
    assert "[trial 1/2] learning_rate:" in out and "[trial 2/2] learning_rate:" in out
    assert f"best params: learning_rate:{best_lr}\n" in out and "test result: recall@5 : " in out


def test_main_missing_params_file(tiny_data, capsys):
    assert hyper.main(["--model=GRU4Rec", "--dataset=tiny", "--params_file=no/such.hyper"]) == 2
    assert "Hyper-parameter file 'no/such.hyper' does not exist" in one_paragraph_error(capsys)
    assert hyper.main(["--model=GRU4Rec", "--dataset=tiny"]) == 2
    assert "No hyper-parameter file ships for GRU4Rec" in one_paragraph_error(capsys)


def test_main_malformed_params_file_and_bad_options(tmp_path, capsys):
    bad = write(tmp_path / "bad.hyper", "learning_rate choice [0.01\n")
    assert hyper.main(["--model=GRU4Rec", f"--params_file={bad}"]) == 2
    assert "line 1: the options of 'learning_rate' must be a non-empty list" in one_paragraph_error(capsys)
    assert hyper.main(["--algo=grid"]) == 2
    assert "--algo=grid is not one of exhaustive, random, bayes" in one_paragraph_error(capsys)
    assert hyper.main(["--max_evals=0"]) == 2
    assert "--max_evals must be an integer >= 1; got 0" in one_paragraph_error(capsys)


def test_tool_ray_without_ray_is_a_clear_error(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    monkeypatch.setitem(sys.modules, "ray.tune", None)
    params = write(tmp_path / "lr.hyper", "learning_rate choice [0.01,0.001]\n")
    argv = ["--model=GRU4Rec", "--dataset=tiny", "--tool=ray", f"--params_file={params}", *overrides(tiny_data)]
    assert hyper.main(argv) == 2
    err = one_paragraph_error(capsys)
    assert "--tool=ray needs Ray Tune" in err and 'pip install -e ".[tune]"' in err and "setuptools < 81" in err


def test_run_hyper_script_help_and_import_stays_light():
    """run_hyper.py runs as a script, and neither it nor RecBole's hyper_tuning
    module imports ray or hyperopt before a search needs them."""
    script = (
        "import runpy, sys\n"
        f"sys.argv = [{str(REPO / 'run_hyper.py')!r}, '--help']\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert not {'ray', 'hyperopt'} & set(sys.modules), 'ray or hyperopt imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--params_file=FILE" in proc.stdout and "--tool=TOOL" in proc.stdout
