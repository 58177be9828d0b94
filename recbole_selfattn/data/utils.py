"""``create_dataset`` / ``data_preparation`` that know the plugin's datasets.

A plugin model that needs its own dataset class defines ``<Model>Dataset`` in
:mod:`recbole_selfattn.data.dataset`; every other model gets RecBole's choice,
as in RecBole-GNN.
"""

import importlib

from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import data_preparation

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
            return recbole_create_dataset(config)
        dataset = dataset_class(config)
        if config["save_dataset"]:
            dataset.save()
        return dataset
    except (ValueError, KeyError) as e:
        raise DatasetError(
            f"RecBole could not build dataset '{config['dataset']}' from {config['data_path']}: {e}. "
            "Check that the atomic files' fields match load_col, USER_ID_FIELD, ITEM_ID_FIELD and TIME_FIELD."
        ) from e
