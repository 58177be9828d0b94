"""RecBole's own entry points after ``import recbole_selfattn``, each run as a
RecBole user's script would run it (a fresh interpreter, RecBole's API only)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import cyclic_sequences, tiny_config, write_inter, write_item_classes

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def user_folder(tmp_path):
    """A working folder holding the ``tiny`` dataset, with a ``.item`` file
    (a ``class`` feature, for S3Rec)."""
    write_inter(tmp_path / "data", "tiny", cyclic_sequences())
    write_item_classes(tmp_path / "data", "tiny")
    return tmp_path


def run_user_script(folder, body):
    """Run ``body`` (after a prelude defining ``settings``, the tiny config)
    as a script in ``folder``; return the JSON it prints last."""
    settings = tiny_config(folder / "data", state="ERROR")
    prelude = f"import json\nsettings = {settings!r}\n"
    script = folder / "user_script.py"
    script.write_text(prelude + textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(script)], cwd=folder, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_recbole_config_dataset_and_trainer_run_plugin_models_with_the_plugin_protocol(user_folder):
    result = run_user_script(user_folder, """
        import recbole_selfattn
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.trainer import Trainer
        from recbole.utils import init_seed
        from recbole_selfattn import MTAW

        same = {}
        for model in (MTAW, "MTAW", "AttRec", "MIND"):
            config = Config(model=model, dataset="tiny", config_dict=settings)
            plugin = recbole_selfattn.Config(model, "tiny", config_dict=settings, cmd_args=[])
            same[str(model)] = config.final_config_dict == plugin.final_config_dict

        config = Config(model="AttRec", dataset="tiny", config_dict=settings)
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        model = recbole_selfattn.get_model("AttRec")(config, train_data.dataset)
        trainer = Trainer(config, model)
        trainer.fit(train_data, valid_data)
        test_result = trainer.evaluate(test_data)
        print(json.dumps({"same": same, "dataset": type(dataset).__name__, "T": config["T"],
                          "split": config["eval_args"]["split"], "test": sorted(test_result)}))
    """)
    assert all(result["same"].values()), result["same"]
    assert result["dataset"] == "AttRecDataset"
    assert result["T"] == 3  # AttRec's property file
    assert result["split"] == {"LS": "valid_and_test"}  # the plugin's protocol, not RecBole's RS split
    assert "ndcg@5" in result["test"] and "ndcg@20" in result["test"]  # the protocol's topk [5, 10, 20]


def test_recbole_quick_start_runs_plugin_and_recbole_models(user_folder):
    result = run_user_script(user_folder, """
        import recbole_selfattn
        from recbole.quick_start import load_data_and_model, objective_function, run_recbole
        from recbole_selfattn import MTAW

        out = {"ray_loaded": __import__("sys").modules.get("ray") is not None}
        for model in ("MTAW", MTAW):
            result = run_recbole(model=model, dataset="tiny", config_dict=settings)
            out[str(model)] = sorted(result["test_result"])
        # RecBole's models keep RecBole's protocol here: cross-entropy needs no negatives.
        settings["train_neg_sample_args"] = None
        result = run_recbole(model="GRU4Rec", dataset="tiny", config_dict=settings)
        out["GRU4Rec"] = sorted(result["test_result"])
        objective = objective_function(config_dict={**settings, "model": "SASRec", "dataset": "tiny"})
        out["objective"] = objective["model"]
        import importlib.util
        import recbole.quick_start.quick_start as recbole_quick_start
        from recbole_selfattn.errors import UsageError
        try:
            recbole_quick_start.tune.run
            out["tune"] = None
        except UsageError as e:
            out["tune"] = str(e) if importlib.util.find_spec("pkg_resources") is None else "unexpected"

        import glob
        for name in ("MTAW", "GRU4Rec"):
            model_file = glob.glob(f"saved/{name}-*.pth")[0]
            config, model, dataset, train_data, valid_data, test_data = load_data_and_model(model_file)
            out["loaded_" + name] = [type(model).__name__, config["topk"], len(test_data.dataset)]
        print(json.dumps(out))
    """)
    assert not result["ray_loaded"]
    assert "ndcg@5" in result["MTAW"] and result["MTAW"] == result["<class 'recbole_selfattn.model.mtaw.MTAW'>"]
    assert "ndcg@10" in result["GRU4Rec"] and result["objective"] == "SASRec"
    assert result["loaded_MTAW"] == ["MTAW", [5, 10, 20], 60] and result["loaded_GRU4Rec"][0] == "GRU4Rec"
    if result["tune"] is not None:  # ray cannot be imported here: RecBole's Ray helpers say what to use
        assert "--tool=hyperopt" in result["tune"] and "\n" not in result["tune"]


def test_s3rec_pretrain_then_finetune_through_recbole_quick_start(user_folder):
    result = run_user_script(user_folder, """
        import recbole_selfattn
        from recbole.quick_start import run_recbole

        settings["load_col"] = {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "class"]}
        settings["train_neg_sample_args"] = None  # RecBole's protocol for its S3Rec: cross-entropy
        pretrain = {**settings, "train_stage": "pretrain", "pretrain_epochs": 1, "save_step": 1}
        run_recbole(model="S3Rec", dataset="tiny", config_dict=pretrain)
        pre_model_path = "saved/S3Rec-tiny-1.pth"
        state = recbole_selfattn.checkpoint.load(pre_model_path)  # plain data: weights-only readable
        finetune = {**settings, "train_stage": "finetune", "pre_model_path": pre_model_path}
        result = run_recbole(model="S3Rec", dataset="tiny", config_dict=finetune)
        print(json.dumps({"epoch": state["epoch"], "test": sorted(result["test_result"])}))
    """)
    assert result["epoch"] == 0 and "ndcg@10" in result["test"]


def test_recbole_loaders_refuse_a_crafted_checkpoint_unread(user_folder):
    result = run_user_script(user_folder, """
        import os, pickle
        import recbole_selfattn
        from recbole.quick_start import load_data_and_model, run_recbole
        from recbole_selfattn.checkpoint import CheckpointError

        class CreatesFile:
            def __reduce__(self):
                return os.system, ("touch pwned",)

        with open("crafted.pth", "wb") as f:
            pickle.dump({"config": {"model": "S3Rec"}, "state_dict": CreatesFile()}, f)
        refused = []
        try:
            load_data_and_model("crafted.pth")
        except CheckpointError as e:
            refused.append("nothing in it ran" in str(e))
        settings["load_col"] = {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "class"]}
        settings["train_neg_sample_args"] = None  # RecBole's protocol for its S3Rec: cross-entropy
        try:
            run_recbole(model="S3Rec", dataset="tiny",
                        config_dict={**settings, "train_stage": "finetune", "pre_model_path": "crafted.pth"})
        except CheckpointError as e:
            refused.append("nothing in it ran" in str(e))
        print(json.dumps({"refused": refused, "ran": os.path.exists("pwned")}))
    """)
    assert result == {"refused": [True, True], "ran": False}


def test_recbole_data_functions_never_unpickle_a_saved_dataset_or_dataloader(user_folder):
    result = run_user_script(user_folder, """
        import os, pickle
        import recbole_selfattn
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation

        class CreatesFile:
            def __reduce__(self):
                return os.system, ("touch pwned",)

        settings["train_neg_sample_args"] = None  # RecBole's own protocol for GRU4Rec: cross-entropy
        config = Config(model="GRU4Rec", dataset="tiny", config_dict=settings)
        os.makedirs(config["checkpoint_dir"], exist_ok=True)
        for name in ("tiny-SequentialDataset.pth", "tiny-for-GRU4Rec-dataloader.pth"):
            with open(os.path.join(config["checkpoint_dir"], name), "wb") as f:
                pickle.dump(CreatesFile(), f)
        config["save_dataset"] = config["save_dataloaders"] = False
        train, valid, test = data_preparation(config, create_dataset(config))
        print(json.dumps({"ran": os.path.exists("pwned"), "items": int(train._dataset.item_num)}))
    """)
    assert result == {"ran": False, "items": 31}
