"""Dataset creation for the plugin: checks, offline-safe download, plugin datasets."""

from recbole_selfattn.data.utils import create_dataset, data_preparation

__all__ = ["create_dataset", "data_preparation"]
