"""``create_dataset`` / ``data_preparation`` that know the plugin's datasets.

A plugin model that needs its own dataset class defines ``<Model>Dataset`` in
:mod:`recbole_selfattn.data.dataset`; every other model gets RecBole's choice,
as in RecBole-GNN.
"""

import importlib

import numpy as np

from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import data_preparation
from recbole.utils import ModelType

from recbole_selfattn.data.atomic import check_dataset_files
from recbole_selfattn.data.download import ensure_dataset
from recbole_selfattn.errors import DatasetError

__all__ = ["create_dataset", "data_preparation"]


def create_dataset(config):
    """Check (and if needed download) the dataset's files, then build the
    plugin's ``<Model>Dataset`` if there is one, else RecBole's dataset."""
    ensure_dataset(config)
    check_dataset_files(config)
    plugin_datasets = importlib.import_module("recbole_selfattn.data.dataset")
    dataset_class = getattr(plugin_datasets, config["model"] + "Dataset", None)
    try:
        if dataset_class is None:
            dataset = recbole_create_dataset(config)
        else:
            dataset = dataset_class(config)
            if config["save_dataset"]:
                dataset.save()
    except (ValueError, KeyError) as e:
        raise DatasetError(
            f"RecBole could not build dataset '{config['dataset']}' from {config['data_path']}: {e}. "
            "Check that the atomic files' fields match load_col, USER_ID_FIELD, ITEM_ID_FIELD and TIME_FIELD."
        ) from e
    check_trainable(config, dataset)
    pad_benchmark_item_lists(config, dataset)
    return dataset


def pad_benchmark_item_lists(config, dataset):
    """Pad the item lists of benchmark files to ``MAX_ITEM_LIST_LENGTH``.

    RecBole pads a ``token_seq`` field to the longest list in the data, while
    its own augmentation (and models such as Caser, whose kernel spans the
    whole window) use ``MAX_ITEM_LIST_LENGTH``. The lengths
    (``ITEM_LIST_LENGTH_FIELD``) are already counted when this runs; longer
    lists were rejected by :func:`~recbole_selfattn.data.atomic.check_dataset_files`."""
    list_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
    if not config["benchmark_filename"] or list_field not in dataset.inter_feat:
        return
    width = config["MAX_ITEM_LIST_LENGTH"]
    dataset.inter_feat[list_field] = [np.pad(seq, (0, width - len(seq))) for seq in dataset.inter_feat[list_field]]
    dataset.field2seqlen[list_field] = width


def check_trainable(config, dataset):
    """Fail clearly when RecBole's filtering leaves no sequence to train on
    (training would crash in the dataloader, or evaluate nothing and report
    empty metrics)."""
    if config["MODEL_TYPE"] != ModelType.SEQUENTIAL or config["benchmark_filename"]:
        return
    split = config["eval_args"]["split"]
    needed = 3 if split.get("LS") == "valid_and_test" else 2
    counts = dataset.inter_feat[dataset.uid_field].value_counts()
    if not (counts >= needed).any():
        raise DatasetError(
            f"Dataset '{config['dataset']}' has {len(dataset.inter_feat)} interactions after RecBole's filtering "
            f"and no user has at least {needed} interactions, so the leave-one-out split leaves nothing to train "
            "on. Add longer histories, or relax the filters (val_interval, user/item_inter_num_interval; "
            "interactions whose item or user is missing from the .item/.user file are dropped unless "
            "filter_inter_by_user_or_item is False)."
        )
