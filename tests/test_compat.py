"""The runtime fixes of recbole_selfattn.compat, each shown to be needed."""

import os
import pickle
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
    """RecBole's own Trainer: save the best checkpoint, then evaluate(load_best_model=True)."""
    trainer, test_data = _train_one_epoch_with_recbole(tiny_data)
    assert os.path.isfile(trainer.saved_model_file)
    result = trainer.evaluate(test_data, load_best_model=True)
    assert 0.0 <= result["ndcg@10"] <= 1.0
    trainer.resume_checkpoint(trainer.saved_model_file)
    assert trainer.start_epoch == 1
    if tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 6):
        # Without the fix: torch's default weights_only=True refuses the checkpoint.
        with pytest.raises(pickle.UnpicklingError):
            torch.load(trainer.saved_model_file)


def test_safe_default_kept_outside_recbole_trainer(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"obj": object()}, path)
    if tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 6):
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)


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
