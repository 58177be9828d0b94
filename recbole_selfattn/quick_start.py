"""The plugin's training pipeline (RecBole's ``run_recbole`` cannot build a
plugin model: it calls RecBole's own ``get_model``).

:func:`run` trains with early stopping on the validation set, evaluates the
best checkpoint on the test set, and returns the metrics together with what
benchmarks record (seconds per epoch, validation curve, parameter count).
"""

import contextlib
import os
import time
from logging import getLogger

import torch

from recbole.utils import dict2str, init_logger, init_seed, set_color

from recbole_selfattn import checkpoint, distributed, output, protocol
from recbole_selfattn.config import Config
from recbole_selfattn.data import check_topk, create_dataset, data_preparation
from recbole_selfattn.data.download import check_dataset
from recbole_selfattn.utils import get_model, get_trainer


def run(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, cmd_args=None):
    """Train and test one model on one dataset.

    Args:
        model (str): plugin model (``AttRec``, ``MTAW``, ``MIND``) or RecBole built-in.
        dataset (str): dataset name under ``data_path`` (``ml-100k`` is bundled).
        config_file_list (list of str): YAML files, later ones win.
        config_dict (dict): parameters above the files.
        saved (bool): save the best checkpoint and test it (else test the last model).
        cmd_args (list of str): ``--key=value`` overrides; ``None`` reads ``sys.argv``.

    With ``nproc > 1`` (or ``world_size > 1``) the run is distributed
    data-parallel (:mod:`recbole_selfattn.distributed`) and rank 0's result
    is returned (``config`` is then a plain dict).

    Returns:
        dict: ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``,
        ``test_result``, ``epoch_seconds``, ``epoch_statistics`` (the model's
        per-epoch training statistics, e.g. MTAW's AW weights), ``valid_curve``, ``best_epoch``,
        ``elapsed_seconds`` (training and validation seconds at each epoch's end),
        ``test_per_user`` (NDCG@k per test user), ``num_params``, ``wall_seconds``,
        ``model_file``, ``config``. After a
        resume, ``valid_curve``, ``best_epoch`` and ``best_valid_result``
        include the checkpoint's epochs (``epoch_seconds`` only this run's).
    """
    config = Config(model, dataset, config_file_list, config_dict, cmd_args=cmd_args)
    checkpoint.check_run_options(config)  # before any data is loaded or process started
    if (config["nproc"] or 1) > 1 or (config["world_size"] or -1) > 1:
        check_dataset(config)  # download once, before the processes start
        return distributed.spawn(_run_single, model, dataset, config_file_list, config_dict, saved, cmd_args, config)
    return _run_single(model, dataset, config_file_list, config_dict, saved, cmd_args, config)


def _run_single(model, dataset, config_file_list, config_dict, saved, cmd_args, config=None):
    start = time.perf_counter()
    if config is None:
        config = Config(model, dataset, config_file_list, config_dict, cmd_args=cmd_args)
    with _onednn(config["cpu_onednn"] is not False):
        return _train_and_test(config, saved, start)


@contextlib.contextmanager
def _onednn(enabled):
    """oneDNN on or off for CPU convolutions while the run lasts (the key
    ``cpu_onednn``, see ``properties/overall.yaml``; ``None``, as for
    non-sequential models, keeps it on). Only this flag is touched:
    ``torch.backends.mkldnn.flags`` would also reset TF32 and determinism."""
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


def _train_and_test(config, saved, start):
    """Build the dataset and model of ``config``, train, test; :func:`run`'s result."""
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    # create_dataset checks the dataset first: a bad dataset is reported
    # before the long config dump, not after it.
    protocol.check_model_inputs(config)
    dataset = create_dataset(config)
    check_topk(config, dataset)
    output.log_to_file(str(config))  # ~100 lines: the log file keeps them, the console does not
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    output.log_to_file(str(model))

    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    if config["checkpoint"]:
        trainer.resume_checkpoint(config["checkpoint"])
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])

    logger.info(set_color("best valid ", "yellow") + f": {dict2str(best_valid_result or {})}")
    logger.info(set_color("test result", "yellow") + f": {dict2str(test_result or {})}")
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": dict(best_valid_result or {}),
        "test_result": dict(test_result or {}),
        "epoch_seconds": list(trainer.epoch_seconds),
        "epoch_statistics": list(trainer.epoch_statistics),
        "valid_curve": list(trainer.valid_curve),
        "best_epoch": trainer.best_epoch,
        "elapsed_seconds": list(trainer.elapsed_seconds),
        "test_per_user": trainer.per_user_result,
        "num_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "wall_seconds": time.perf_counter() - start,
        "model_file": trainer.saved_model_file if saved else None,
        "config": config,
    }


# What RecBole derives while it builds a Config (device and process layout,
# model type, evaluation direction): a checkpoint's saved form of these must
# not override the derivation when the Config is rebuilt.
_DERIVED_KEYS = ("MODEL_TYPE", "MODEL_INPUT_TYPE", "device", "local_rank", "single_spec", "is_distributed", "eval_type", "valid_metric_bigger")


def load_data_and_model(model_file):
    """RecBole's ``recbole.quick_start.load_data_and_model`` for checkpoints
    read weights-only (:func:`recbole_selfattn.checkpoint.load`): the config
    is rebuilt from the checkpoint's plain copy, the dataset from its atomic
    files (never from a pickle), the model from its class and weights.

    Returns:
        tuple: ``(config, model, dataset, train_data, valid_data, test_data)``.
    """
    state = checkpoint.load(model_file)
    saved = state["config"]
    config_dict = {key: value for key, value in saved.items() if key not in _DERIVED_KEYS}
    if (saved.get("train_neg_sample_args") or {}).get("distribution") == "none":
        config_dict["train_neg_sample_args"] = None  # RecBole's expanded form of "no sampling"
    config_dict["data_path"] = os.path.dirname(saved["data_path"])  # RecBole appended the dataset name
    config = Config(saved["model"], saved["dataset"], config_dict=config_dict, cmd_args=[])
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    model.load_state_dict(state["state_dict"])
    model.load_other_parameter(state.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
