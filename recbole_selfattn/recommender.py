"""Top-k recommendations from a saved checkpoint.

    >>> from recbole_selfattn import recommend
    >>> recommend("saved/AttRec-Nov-23-2026_10-00-00.pth", ["50", "172", "133"], k=10)
    ['174', '98', ...]

:class:`Recommender` loads the checkpoint once (the model and the dataset's
token mapping, rebuilt from the checkpoint's config) and scores any number of
histories; :func:`recommend` is the one-shot form.
"""

import torch
from recbole.data.interaction import Interaction

from recbole_selfattn.data import create_dataset
from recbole_selfattn.errors import UsageError
from recbole_selfattn.utils import get_model


class Recommender:
    """A trained model and its item vocabulary, ready to rank items.

    Args:
        model_file (str): a checkpoint written by training (``saved/<Model>-<date>.pth``).
        device (str): where to score (default ``cpu``).
    """

    def __init__(self, model_file, device="cpu"):
        try:
            checkpoint = torch.load(model_file, map_location=device, weights_only=False)
        except FileNotFoundError as e:
            raise UsageError(f"No checkpoint at {model_file}: train a model first (it saves to checkpoint_dir).") from e
        config = checkpoint["config"]
        config["device"] = torch.device(device)
        self.dataset = create_dataset(config)
        self.model = get_model(config["model"])(config, self.dataset).to(device)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.model.eval()
        self.config = config
        self.device = device

    def _item_ids(self, history):
        field = self.dataset.iid_field
        known = self.dataset.field2token_id[field]
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
        ``exclude_history`` removes items already in the history.
        """
        if not history:
            raise UsageError("The history is empty: give at least one item token.")
        max_len = self.config["MAX_ITEM_LIST_LENGTH"]
        ids = self._item_ids(history)[-max_len:]
        item_seq = torch.zeros(1, max_len, dtype=torch.long)
        item_seq[0, : len(ids)] = torch.tensor(ids)
        user_id = self.dataset.field2token_id[self.dataset.uid_field].get(str(user), 0) if user is not None else 0
        interaction = Interaction(
            {
                self.model.ITEM_SEQ: item_seq,
                self.model.ITEM_SEQ_LEN: torch.tensor([len(ids)]),
                self.dataset.uid_field: torch.tensor([user_id]),
            }
        ).to(self.device)
        scores = self.model.full_sort_predict(interaction).view(-1).clone()
        scores[0] = -torch.inf  # padding
        if exclude_history:
            scores[torch.tensor(ids)] = -torch.inf
        top = torch.topk(scores, min(k, scores.numel() - 1)).indices.cpu().numpy()
        return list(self.dataset.id2token(self.dataset.iid_field, top))


def recommend(model_file, history, k=10, user=None, exclude_history=False):
    """One-shot :meth:`Recommender.recommend` from a checkpoint file."""
    return Recommender(model_file).recommend(history, k, user, exclude_history)
