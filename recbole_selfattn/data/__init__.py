"""Dataset creation for the plugin: checks, offline-safe download, plugin datasets."""

from recbole_selfattn.data.utils import check_topk, create_dataset, data_preparation

__all__ = ["check_topk", "create_dataset", "data_preparation"]
