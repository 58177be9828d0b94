"""Dataset classes for plugin models that need more than RecBole's
``SequentialDataset`` (looked up by name: ``<Model>Dataset``)."""

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType


def next_items_field(config):
    """Name of :class:`AttRecDataset`'s field holding each row's next ``T`` items."""
    return config["ITEM_ID_FIELD"] + "_next"


class AttRecDataset(SequentialDataset):
    """RecBole's ``SequentialDataset`` plus, for every row, the next ``T``
    items of its sequence (AttRec's targets; ``T = 1`` is the next item only).

    ``<i1, i2, i3, i4, i5>`` with ``T = 3`` gives the rows
    ``<i1> | i2 -> [i2, i3, i4]``, ``<i1, i2> | i3 -> [i3, i4, i5]``,
    ``<i1, i2, i3> | i4 -> [i4, i5, 0]`` and ``<i1..i4> | i5 -> [i5, 0, 0]``:
    the first column is the row's own target, 0 pads where the sequence ends.

    RecBole augments the whole sequence before it splits it into
    train/valid/test, so the field is filled after the split, from each
    split's own rows: a training row never sees the validation or test
    items (with leave-one-out, the last training row of a user gets
    ``[target, 0, ...]``). Within a split a user's rows are in time order
    (RecBole's ``TO`` ordering and its splits keep it), one row per position.
    """

    def __init__(self, config):
        self.next_items_field = next_items_field(config)
        self.n_next = config["T"]
        super().__init__(config)

    def build(self):
        datasets = super().build()
        self.set_field_property(self.next_items_field, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, self.n_next)
        for dataset in datasets:
            inter = dataset.inter_feat
            next_items = self._next_items(inter[self.uid_field], inter[self.iid_field])
            inter.update(Interaction({self.next_items_field: next_items}))
        return datasets

    def _next_items(self, users, items):
        """``[n_rows, T]``: row ``r``'s target and those of the next ``T - 1``
        rows of the same user (0 past the user's last row)."""
        order = torch.from_numpy(np.argsort(users.numpy(), kind="stable"))
        users, items = users[order], items[order]
        next_items = torch.zeros(len(items), self.n_next, dtype=items.dtype)
        for k in range(min(self.n_next, len(items))):
            same_user = users[k:] == users[: len(users) - k]
            next_items[: len(items) - k, k] = torch.where(same_user, items[k:], 0)
        return torch.empty_like(next_items).index_copy_(0, order, next_items)
