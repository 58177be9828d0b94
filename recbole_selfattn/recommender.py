"""Top-k recommendations from a saved checkpoint.

    >>> from recbole_selfattn import recommend
    >>> recommend("saved/AttRec-Nov-23-2026_10-00-00-4242.1-9f3a.pth", ["50", "172", "133"], k=10)
    ['174', '98', ...]

:class:`Recommender` loads the checkpoint once and scores any number of
histories; :func:`recommend` is the one-shot form. Everything comes from the
checkpoint (read weights-only, :mod:`recbole_selfattn.checkpoint`): the
model is rebuilt from its config and from :class:`VocabularyDataset`, a
stand-in for the dataset made of the token vocabulary the training data had,
so the dataset files are not read (and changing them changes nothing).
"""

import numpy as np
import torch
from recbole.data.interaction import Interaction

from recbole_selfattn import checkpoint
from recbole_selfattn.checkpoint import CheckpointError
from recbole_selfattn.errors import UsageError
from recbole_selfattn.utils import get_model


class SavedConfig(dict):
    """A checkpoint's plain config, read like RecBole's ``Config``: a missing
    key reads as ``None``."""

    def __missing__(self, key):
        return None


class VocabularyDataset:
    """What a model's ``__init__`` reads from a RecBole dataset to size its
    layers (``num``, ``user_num``, ``item_num``, the id fields), built from
    the token vocabulary stored in a checkpoint. Models that also read
    features or interactions (e.g. FEARec, DIN, KSR) cannot be rebuilt from
    it; :class:`Recommender` says so."""

    def __init__(self, config, vocabulary):
        self.uid_field = config["USER_ID_FIELD"]
        self.iid_field = config["ITEM_ID_FIELD"]
        self.field2id_token = {field: np.array(tokens) for field, tokens in vocabulary.items()}
        self.field2token_id = {field: {t: i for i, t in enumerate(tokens)} for field, tokens in vocabulary.items()}

    def num(self, field):
        return len(self.field2id_token[field])

    @property
    def user_num(self):
        return self.num(self.uid_field)

    @property
    def item_num(self):
        return self.num(self.iid_field)

    def id2token(self, field, ids):
        return self.field2id_token[field][ids]


class Recommender:
    """A trained model and its item vocabulary, ready to rank items.

    Args:
        model_file (str): a checkpoint written by training (``saved/<Model>-<date>-....pth``).
        device (str): where to score (default ``cpu``).
    """

    def __init__(self, model_file, device="cpu"):
        state = checkpoint.load(model_file, map_location=device)
        if not state.get("vocab"):
            raise CheckpointError(
                f"Checkpoint {model_file} has no token vocabulary (it was not saved by a sequential "
                "model's trainer): train a sequential model with recbole-selfattn and give its .pth file."
            )
        self.config = SavedConfig(state["config"], device=torch.device(device))
        self.dataset = VocabularyDataset(self.config, state["vocab"])
        self.model = self._build_model(model_file)
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state.get("other_parameter"))
        self.model.eval()
        self.device = device

    def _build_model(self, model_file):
        model = self.config["model"]
        try:
            return get_model(model)(self.config, self.dataset).to(self.config["device"])
        except AttributeError as e:
            raise UsageError(
                f"{model} (checkpoint {model_file}) needs dataset features beyond the token vocabulary "
                f"to be rebuilt ({e}), so it cannot recommend from a checkpoint alone: use a model sized "
                "by its vocabulary only (AttRec, MTAW, MIND, SASRec, GRU4Rec, Caser, ...)."
            ) from None

    def _item_ids(self, history):
        known = self.dataset.field2token_id[self.dataset.iid_field]
        unknown = [token for token in history if str(token) not in known]
        if unknown:
            raise UsageError(
                f"Items {unknown[:5]} are not in the training data of this model "
                f"({len(known) - 1} known items): drop them from the history."
            )
        return [known[str(token)] for token in history]

    @torch.no_grad()
    def recommend(self, history, k=10, user=None, exclude_history=False):
        """Return the ``k`` best item tokens after ``history`` (oldest first).

        ``user`` (a user token) matters for models with a user component
        (AttRec with ``omega > 0``); unknown or ``None`` uses the padding user.
        ``exclude_history`` removes every item of the history (not only the
        last ``MAX_ITEM_LIST_LENGTH`` the model reads); fewer than ``k``
        items come back when fewer are left to recommend.
        """
        scores = self.model.full_sort_predict(self.model_input(history, user)).view(-1).clone()
        scores[0] = -torch.inf  # padding
        candidates = scores.numel() - 1
        if exclude_history:
            excluded = sorted(set(self._item_ids(history)))
            scores[torch.tensor(excluded)] = -torch.inf
            candidates -= len(excluded)
        top = torch.topk(scores, min(k, candidates)).indices.cpu().numpy()
        return [str(token) for token in self.dataset.id2token(self.dataset.iid_field, top)]

    def model_input(self, history, user=None):
        """The one-row ``Interaction`` the model reads for ``history`` (item tokens,
        oldest first; its last ``MAX_ITEM_LIST_LENGTH`` items) and ``user`` (see
        :meth:`recommend`)."""
        if not history:
            raise UsageError("The history is empty: give at least one item token.")
        ids = self._item_ids(history)[-self.config["MAX_ITEM_LIST_LENGTH"] :]
        item_seq = torch.zeros(1, self.config["MAX_ITEM_LIST_LENGTH"], dtype=torch.long)
        item_seq[0, : len(ids)] = torch.tensor(ids)
        user_ids = self.dataset.field2token_id[self.dataset.uid_field]
        user_id = user_ids.get(str(user), 0) if user is not None else 0
        return Interaction(
            {
                self.model.ITEM_SEQ: item_seq,
                self.model.ITEM_SEQ_LEN: torch.tensor([len(ids)]),
                self.dataset.uid_field: torch.tensor([user_id]),
            }
        ).to(self.device)


def recommend(model_file, history, k=10, user=None, exclude_history=False):
    """One-shot :meth:`Recommender.recommend` from a checkpoint file."""
    return Recommender(model_file).recommend(history, k, user, exclude_history)
