"""The runtime fixes of recbole_selfattn.compat, each shown to be needed."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from recbole.config import Config as RecBoleConfig
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import GRU4Rec
from recbole.trainer import Trainer
from recbole.utils import init_seed

from recbole_selfattn import compat
from recbole_selfattn.errors import UsageError
from tests.conftest import tiny_config


def test_numpy_aliases_restored_after_removal(monkeypatch):
    for name in compat._NUMPY_ALIASES:
        monkeypatch.delattr(np, name, raising=False)
    with pytest.raises(AttributeError):
        np.float_  # what RecBole's Config trips over on numpy 2
    compat.apply()
    assert np.float_ is np.float64 and np.bool8 is np.bool_ and np.unicode_ is np.str_


def test_recbole_config_builds_with_numpy_aliases(tiny_data):
    # RecBole's Config.compatibility_settings reads np.float_ / np.complex_ / np.unicode_.
    config = RecBoleConfig("GRU4Rec", "tiny", config_dict=tiny_config(tiny_data, train_neg_sample_args=None))
    assert config["model"] == "GRU4Rec"


def _train_one_epoch_with_recbole(data_path):
    config = RecBoleConfig("GRU4Rec", "tiny", config_dict=tiny_config(data_path, train_neg_sample_args=None))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = GRU4Rec(config, train_data._dataset)
    trainer = Trainer(config, model)
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    return trainer, test_data


def test_recbole_trainer_reloads_its_best_checkpoint(tiny_data):
    """RecBole's own Trainer: save the best checkpoint, then evaluate(load_best_model=True)
    and resume, all from a file that torch reads weights-only (plain data, no pickled Config)."""
    trainer, test_data = _train_one_epoch_with_recbole(tiny_data)
    assert os.path.isfile(trainer.saved_model_file)
    saved = torch.load(trainer.saved_model_file, weights_only=True)
    assert saved["config"]["model"] == "GRU4Rec" and saved["config"]["device"] == "cpu"
    result = trainer.evaluate(test_data, load_best_model=True)
    assert 0.0 <= result["ndcg@10"] <= 1.0
    trainer.resume_checkpoint(trainer.saved_model_file)
    assert trainer.start_epoch == 1


class _CreatesFile:
    """Unpickling this calls os.system: a crafted checkpoint."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def test_recbole_trainer_refuses_a_crafted_checkpoint(tiny_data, tmp_path):
    """RecBole's trainer module reads checkpoints weights-only: nothing in the file runs."""
    trainer, test_data = _train_one_epoch_with_recbole(tiny_data)
    marker = tmp_path / "pwned"
    crafted = tmp_path / "crafted.pth"
    torch.save({"config": {"model": "GRU4Rec"}, "payload": _CreatesFile(marker)}, crafted)
    with pytest.raises(UsageError, match="could not be read safely"):
        trainer.resume_checkpoint(crafted)
    with pytest.raises(UsageError, match="could not be read safely"):
        trainer.evaluate(test_data, load_best_model=True, model_file=str(crafted))
    assert not marker.exists()


def test_import_does_not_import_ray():
    code = "import sys, recbole_selfattn; sys.exit(1 if 'ray' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def _anomaly_mode_after(code):
    code += "; import torch; print(torch.is_anomaly_enabled())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()[-1]


def test_recbole_sequential_models_leave_anomaly_detection_off():
    # Without the fix: importing RecBole's sequential models (SINE) turns it on for the process.
    assert _anomaly_mode_after("import recbole.model.sequential_recommender") == "True"
    assert _anomaly_mode_after("import recbole_selfattn") == "False"
    resolve = "from recbole_selfattn import get_model; get_model('SASRec')"
    assert _anomaly_mode_after(resolve) == "False"
    reversed_order = "import recbole.model.sequential_recommender, recbole_selfattn"
    assert _anomaly_mode_after(reversed_order) == "False"


def test_float_fields_have_no_nan_after_loading(tiny_data):
    """pandas 3 makes RecBole's in-place fillna a no-op (NaN stays): the pin keeps pandas 2."""
    assert int(pd.__version__.split(".")[0]) < 3
    inter = tiny_data / "tiny" / "tiny.inter"
    lines = inter.read_text().splitlines()
    lines[0] += "\tprice:float"
    lines[1:] = [line + ("\t" if i == 0 else "\t1.5") for i, line in enumerate(lines[1:])]
    inter.write_text("\n".join(lines) + "\n")
    config = RecBoleConfig(
        "GRU4Rec",
        "tiny",
        config_dict=tiny_config(
            tiny_data, train_neg_sample_args=None, load_col={"inter": ["user_id", "item_id", "timestamp", "price"]}
        ),
    )
    dataset = create_dataset(config)
    assert not dataset.inter_feat["price"].isna().any()


@pytest.mark.parametrize("module", compat._ENSURE_DIR_USERS)
def test_recbole_folders_survive_a_process_creating_them_first(module, tmp_path, monkeypatch):
    """Two processes starting together (benchmark ``--jobs``, DDP ranks) both
    see ``log/`` missing, and one creates it before the other does: RecBole's
    check-then-create ``ensure_dir`` then dies with FileExistsError."""
    import importlib

    folder = tmp_path / "log"
    folder.mkdir()  # the other process won the race
    monkeypatch.setattr(os.path, "exists", lambda path: False)  # this one checked before it did
    importlib.import_module(module).ensure_dir(str(folder))
    assert folder.is_dir()
