"""What each sequential model needs from the shared protocol.

The plugin's protocol (``properties/overall.yaml``) is cross-entropy over all
items with full ranking: no sampled negatives, only the interaction columns.
Some of RecBole's sequential models need more, and get it here:

* **Sampled negatives.** A model trained on sampled negatives gets the
  protocol's ``sampled_negatives`` as ``train_neg_sample_args`` (unless the
  model's file or the user sets that key): any model with ``loss_type: BPR``
  (FPMC; SASRec, GRU4Rec, ... with ``--loss_type=BPR``) and RecBole's models
  with no ``loss_type`` option, which always sample: TransRec (BPR) and
  DIN/DIEN (their labels are 1 for the target, 0 for the sampled negative).
* **RecBole's own quick-start settings** for models that cannot use the
  plain protocol win over it: DIN/DIEN's click-through protocol (no full
  ranking: 100 sampled candidates, AUC and LogLoss), the feature columns
  RecBole loads for GRU4RecF, SASRecF, FDSA and S3Rec on ml-100k, and the
  entity embeddings of GRU4RecKG and KSR.
* **Missing inputs** (item features, knowledge-graph files) are reported in
  one paragraph before the dataset is built (:func:`check_model_inputs`).
"""

import os
from pathlib import Path

import recbole

from recbole_selfattn.errors import DatasetError

_QUICK_START_CONFIG = Path(recbole.__file__).resolve().parent / "properties" / "quick_start_config"


def recbole_quick_start_files(model, dataset):
    """RecBole's model-specific quick-start files for ``model`` on ``dataset``
    (the choice of RecBole's ``Config``, minus the generic ``sequential.yaml``)."""
    if model in ("DIN", "DIEN"):
        names = ["sequential_DIN.yaml"] + (["sequential_DIN_on_ml-100k.yaml"] if dataset == "ml-100k" else [])
    elif model in ("GRU4RecKG", "KSR"):
        names = ["sequential_embedding_model.yaml"]
    elif model in ("GRU4RecF", "SASRecF", "FDSA", "S3Rec") and dataset == "ml-100k":
        names = ["special_sequential_on_ml-100k.yaml"]
    else:
        names = []
    return [_QUICK_START_CONFIG / name for name in names]


def needs_sampled_negatives(config, builtin):
    """Whether the model of ``config`` trains on sampled negatives
    (``builtin``: it is one of RecBole's models)."""
    loss_type = config["loss_type"]
    return loss_type == "BPR" or (builtin and loss_type is None)


def set_sampled_negatives(config, builtin):
    """Give ``config`` the protocol's ``sampled_negatives`` where its model
    needs them and nothing but the protocol's ``~`` says otherwise."""
    final = config.final_config_dict
    protocol_default = final.get("train_neg_sample_args") is None and "train_neg_sample_args" not in config.external_config_dict
    if protocol_default and final.get("sampled_negatives") and needs_sampled_negatives(config, builtin):
        final["train_neg_sample_args"] = dict(final["sampled_negatives"])


def check_model_inputs(config):
    """Fail in one paragraph when the dataset lacks what the model reads:
    the files of ``additional_feat_suffix`` (entity embeddings of the KG
    models) and, with ``selected_features``, the ``.item`` file."""
    folder = config["data_path"]
    dataset = config["dataset"]
    for suffix in config["additional_feat_suffix"] or []:
        path = os.path.join(folder, f"{dataset}.{suffix}")
        if not os.path.isfile(path):
            raise DatasetError(
                f"{config['model']} reads pretrained embeddings from {path} (additional_feat_suffix: {suffix}, "
                f"see its load_col entry), which dataset '{dataset}' does not have: RecBole's "
                "knowledge-aware sequential models need that file (and the .kg/.link files) beside the .inter "
                "file. Add it, or train a model that needs only interactions (e.g. --model=GRU4Rec)."
            )
    features = config["selected_features"] or ([config["item_attribute"]] if config["item_attribute"] else [])
    if features and not _loads_item_columns(config, features):
        raise DatasetError(
            f"{config['model']} reads the item features {features} (selected_features or item_attribute), which dataset "
            f"'{dataset}' does not load: give a {dataset}.item file holding them and load them with "
            f"--load_col=\"{{'inter': ['user_id', 'item_id', 'timestamp'], 'item': ['item_id', "
            f"{', '.join(repr(f) for f in features)}]}}\", or name columns it has."
        )


def _loads_item_columns(config, features):
    """Whether the ``.item`` file exists and ``load_col`` loads ``features``
    from it (``load_col: ~`` loads every column)."""
    item_file = os.path.join(config["data_path"], f"{config['dataset']}.item")
    load_col = config["load_col"]
    return os.path.isfile(item_file) and (load_col is None or set(features) <= set(load_col.get("item", [])))
