"""Model resolution and config layering (plugin YAMLs, protocol, precedence)."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from recbole.config import Config as RecBoleConfig
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.sequential_recommender import SASRec

from recbole_selfattn import PLUGIN_MODELS, Config, get_model
from recbole_selfattn.config import properties_dir
from recbole_selfattn.errors import UnknownModelError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", PLUGIN_MODELS)
def test_plugin_models_resolve_to_sequential_recommenders(name):
    model_class = get_model(name)
    assert model_class.__name__ == name
    assert issubclass(model_class, SequentialRecommender)
    assert model_class.__module__ == f"recbole_selfattn.model.{name.lower()}"


def test_plugin_models_importable_from_package():
    import recbole_selfattn

    assert recbole_selfattn.AttRec is get_model("AttRec")


@pytest.mark.parametrize("name", ["SASRec", "Caser", "GRU4Rec", "BPR"])
def test_builtin_models_resolve_to_recbole(name):
    assert get_model(name).__module__.startswith("recbole.model.")
    assert get_model("SASRec") is SASRec


@pytest.mark.parametrize(
    "name, hint", [("Unknown", "--help"), ("sasrec", "did you mean 'SASRec'"), ("AttRek", "'AttRec'")]
)
def test_unknown_model_is_a_clear_error(name, hint):
    with pytest.raises(UnknownModelError) as err:
        get_model(name)
    message = str(err.value)
    assert f"Unknown model '{name}'" in message and hint in message
    assert "lightgbm" not in message


def _yaml(path):
    """Read a property file the way RecBole does (its loader reads 1e-12 as a float)."""
    with open(path) as f:
        return yaml.load(f, Loader=RecBoleConfig._build_yaml_loader(None))


@pytest.mark.parametrize("name", PLUGIN_MODELS)
def test_plugin_property_file_is_loaded(name, tiny_data):
    keys = _yaml(properties_dir() / "model" / f"{name}.yaml")
    config = Config(name, "tiny", config_dict={"data_path": str(tiny_data)}, cmd_args=[])
    for key, value in keys.items():
        if key != "train_neg_sample_args":  # RecBole expands that dict
            assert config[key] == value, key
    # After `import recbole_selfattn`, RecBole's own Config, handed the plugin
    # class, loads the same files (tests/test_dropin.py runs it as a user would).
    plain = RecBoleConfig(get_model(name), "tiny", config_dict={"data_path": str(tiny_data)})
    for key, value in keys.items():
        if key != "train_neg_sample_args":
            assert plain[key] == value, key


def test_protocol_applies_to_builtin_models(tiny_data):
    protocol = _yaml(properties_dir() / "overall.yaml")
    config = Config("SASRec", "tiny", config_dict={"data_path": str(tiny_data)}, cmd_args=[])
    assert config["topk"] == protocol["topk"] == [5, 10, 20]
    assert config["valid_metric"] == "NDCG@10"
    assert config["MAX_ITEM_LIST_LENGTH"] == 50
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert config["eval_args"]["order"] == "TO" and config["eval_args"]["mode"]["test"] == "full"
    assert config["train_neg_sample_args"]["distribution"] == "none"  # CE needs no negatives
    assert config["n_heads"] == 2  # RecBole's SASRec.yaml still applies


def test_precedence_cmd_over_dict_over_files_over_yaml(tiny_data, tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("learning_rate: 0.01\nn_heads: 4\ntopk: [7]\nvalid_metric: NDCG@7\nstopping_step: 3\n")
    second.write_text("learning_rate: 0.02\nstopping_step: 4\n")
    files = [str(first), str(second)]
    base = {"data_path": str(tiny_data)}
    config = Config("SASRec", "tiny", files, base, cmd_args=[])
    assert config["n_heads"] == 4  # file > model YAML
    assert config["topk"] == [7]  # file > protocol
    assert config["stopping_step"] == 4 and config["learning_rate"] == 0.02  # later file wins
    config = Config("SASRec", "tiny", files, {**base, "learning_rate": 0.03}, cmd_args=[])
    assert config["learning_rate"] == 0.03 and config["stopping_step"] == 4  # dict > files
    config = Config("SASRec", "tiny", files, {**base, "learning_rate": 0.03}, cmd_args=["--learning_rate=0.04"])
    assert config["learning_rate"] == 0.04  # command line > dict


def test_ml100k_resolves_to_recbole_bundled_copy():
    config = Config("SASRec", "ml-100k", cmd_args=[])
    assert Path(config["data_path"], "ml-100k.inter").is_file()


def test_wheel_ships_property_files_and_works_elsewhere(tmp_path):
    """Build the wheel, unpack it away from the checkout, and load a plugin YAML from it."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
    )
    (wheel,) = tmp_path.glob("recbole_selfattn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("overall.yaml", *(f"model/{m}.yaml" for m in PLUGIN_MODELS)):
        assert f"recbole_selfattn/properties/{name}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import recbole_selfattn, yaml; from recbole_selfattn.config import properties_dir;"
        "p = properties_dir(); assert str(p).startswith(%r), p;"
        "keys = yaml.safe_load(open(p / 'model' / 'MIND.yaml'));"
        "c = recbole_selfattn.Config('MIND', 'ml-100k', cmd_args=[]);"
        "assert all(c[k] == v for k, v in keys.items()), keys" % str(site)
    )
    subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env={"PYTHONPATH": str(site), "PATH": ""}, check=True)


def test_common_values_accept_every_legitimate_form(tiny_data, tmp_path):
    """The value checks reject mistypes only: RecBole's own spellings pass."""
    conf = tmp_path / "port.yaml"
    conf.write_text("port: '29500'\n")  # a string, as RecBole's own examples write it
    config = Config(
        "SASRec", "tiny", [str(conf)], {"data_path": str(tiny_data)},
        cmd_args=["--topk=10", "--eval_step=0", "--world_size=-1", "--learning_rate=10", "--seed=0",
                  "--clip_grad_norm={'max_norm': 5}", "--reproducibility=false", "--valid_metric=NDCG@10"],
    )
    assert config["topk"] == [10] and config["port"] == "29500" and config["reproducibility"] is False
    assert config["clip_grad_norm"] == {"max_norm": 5} and config["learning_rate"] == 10
