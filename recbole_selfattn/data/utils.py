"""``create_dataset`` / ``data_preparation`` that know the plugin's datasets.

A plugin model that needs its own dataset class defines ``<Model>Dataset`` in
:mod:`recbole_selfattn.data.dataset`; every other model gets RecBole's choice,
as in RecBole-GNN.

Both functions always build from the atomic files. RecBole's own versions
first unpickle ``<checkpoint_dir>/<dataset>-<DatasetClass>.pth`` and
``<checkpoint_dir>/<dataset>-for-<model>-dataloader.pth`` (or
``dataset_save_path`` / ``dataloaders_save_path``) when such a file exists:
unpickling runs any code the file holds, and a cache left by another
``data_path`` silently trains on the old data. Here ``save_dataset`` and
``save_dataloaders`` are write-only: they save those pickles (to
``dataset_save_path`` / ``dataloaders_save_path`` if set, else to RecBole's
default paths) for use outside the plugin, and nothing here ever reads them.
"""

import importlib
import os
import pickle
from logging import getLogger

import numpy as np
from recbole.data import get_dataloader
from recbole.data.utils import create_samplers
from recbole.evaluator.register import Register
from recbole.sampler import KGSampler
from recbole.utils import ModelType

from recbole_selfattn.data.download import check_dataset
from recbole_selfattn.errors import DatasetError
from recbole_selfattn.safe_write import atomic_open

__all__ = ["check_topk", "create_dataset", "data_preparation"]

# RecBole's dataset class for each model type (recbole.data.utils.create_dataset).
_DATASET_CLASS_BY_TYPE = {
    ModelType.GENERAL: "Dataset",
    ModelType.SEQUENTIAL: "SequentialDataset",
    ModelType.CONTEXT: "Dataset",
    ModelType.KNOWLEDGE: "KnowledgeBasedDataset",
    ModelType.TRADITIONAL: "Dataset",
    ModelType.DECISIONTREE: "Dataset",
}


def dataset_class(config):
    """The plugin's ``<Model>Dataset``, else RecBole's, else RecBole's class
    for the model type (the choice of RecBole's ``create_dataset``)."""
    for module in ("recbole_selfattn.data.dataset", "recbole.data.dataset"):
        found = getattr(importlib.import_module(module), config["model"] + "Dataset", None)
        if found is not None:
            return found
    return getattr(importlib.import_module("recbole.data.dataset"), _DATASET_CLASS_BY_TYPE[config["MODEL_TYPE"]])


def create_dataset(config):
    """Check (and if needed download) the dataset's files, then build the
    dataset from them; with ``save_dataset``, also write it (never read back)."""
    check_dataset(config)
    cls = dataset_class(config)
    try:
        dataset = cls(config)
    except (ValueError, KeyError) as e:
        raise DatasetError(
            f"RecBole could not build dataset '{config['dataset']}' from {config['data_path']}: {e}. "
            "Check that the atomic files' fields match load_col, USER_ID_FIELD, ITEM_ID_FIELD and TIME_FIELD."
        ) from e
    if config["save_dataset"]:
        default = os.path.join(config["checkpoint_dir"], f"{config['dataset']}-{cls.__name__}.pth")
        _write_pickle(config["dataset_save_path"] or default, dataset, "filtered dataset")
    check_sequences(config, dataset)
    pad_benchmark_item_lists(config, dataset)
    return dataset


def data_preparation(config, dataset):
    """Split ``dataset`` and build the train/valid/test dataloaders, as
    RecBole's ``data_preparation`` does when it finds no saved dataloaders;
    with ``save_dataloaders``, also write them (never read back)."""
    built_datasets = dataset.build()
    train_dataset, valid_dataset, test_dataset = built_datasets
    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, built_datasets)
    train_loader = get_dataloader(config, "train")
    if config["MODEL_TYPE"] == ModelType.KNOWLEDGE:
        neg_args = config["train_neg_sample_args"]
        kg_sampler = KGSampler(dataset, neg_args["distribution"], neg_args["alpha"])
        train_data = train_loader(config, train_dataset, train_sampler, kg_sampler, shuffle=True)
    else:
        train_data = train_loader(config, train_dataset, train_sampler, shuffle=config["shuffle"])
    valid_data = get_dataloader(config, "valid")(config, valid_dataset, valid_sampler, shuffle=False)
    test_data = get_dataloader(config, "test")(config, test_dataset, test_sampler, shuffle=False)
    dataloaders = (train_data, valid_data, test_data)
    if config["save_dataloaders"]:
        save_dataloaders(config, dataloaders)
    return dataloaders


def save_dataloaders(config, dataloaders):
    """Write the split dataloaders in RecBole's format (a list of
    ``(dataloader, generator_state)``). Their ``torch.Generator`` cannot be
    pickled, so it is detached while writing and put back afterwards (RecBole
    leaves it ``None``, which breaks the run that saved it)."""
    default = os.path.join(config["checkpoint_dir"], f"{config['dataset']}-for-{config['model']}-dataloader.pth")
    generators = [loader.generator for loader in dataloaders]
    try:
        for loader in dataloaders:
            loader.generator = loader.sampler.generator = None
        payload = [(loader, generator.get_state()) for loader, generator in zip(dataloaders, generators)]
        _write_pickle(config["dataloaders_save_path"] or default, payload, "split dataloaders")
    finally:
        for loader, generator in zip(dataloaders, generators):
            loader.generator = generator
            if hasattr(loader.sampler, "generator"):
                loader.sampler.generator = generator


def _write_pickle(path, obj, what):
    """Pickle ``obj`` to ``path``, whole or not at all."""
    getLogger().info(f"Saving {what} into [{path}] (write-only: this package never loads it)")
    with atomic_open(path, "wb") as f:
        pickle.dump(obj, f)


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


def check_sequences(config, dataset):
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


def check_topk(config, dataset):
    """Fail clearly when the largest ``topk`` is not below the number of items.

    RecBole's evaluator takes ``torch.topk(scores, max(topk))`` over
    ``dataset.item_num`` columns, the padding id 0 included: a larger ``k``
    crashes after training (``selected index k out of range``), and a ``k``
    of at least the number of real items ranks every item (or the masked
    padding and history items) into the list, so Hit@k and friends are
    meaningless. Hence ``max(topk) < dataset.item_num - 1``. The training
    pipeline checks it right after building the dataset, before training; a
    dataset built for other uses (inspection, recommendations) is not held to
    the evaluation's ``topk``."""
    register = Register(config)
    if not (register.need("rec.topk") or register.need("rec.items")):
        return
    n_items, k = dataset.item_num - 1, max(config["topk"])
    if k >= n_items:
        raise DatasetError(
            f"Dataset '{config['dataset']}' has {n_items} item(s) after RecBole's filtering, but --topk asks for "
            f"top-{k} lists: the largest topk must be smaller than the number of items, or the ranking "
            f"metrics crash after training (or rank every item). Lower every --topk value below {n_items} "
            "(and valid_metric with it), or use a dataset with more items."
        )
