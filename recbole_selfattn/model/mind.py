r"""
MIND
################################################

Reference:
    Chao Li et al. "Multi-Interest Network with Dynamic Routing for Recommendation at Tmall." in CIKM 2019.

The user's history is a set of behaviour capsules ``c_i = e_i``; Behaviour-to-Interest
(B2I) dynamic routing (the paper's Algorithm 1, with one bilinear map ``S`` shared by all
capsule pairs) groups them into ``K'_u`` interest capsules:

.. math::
    K'_u = \max(1, \min(K, \lfloor \log_2 |I_u| \rfloor))

    b_{ij} \sim \mathcal{N}(0, \sigma^2)

    w_{ij} = \mathrm{softmax}_j(b_{ij}), \quad z_j = \sum_{i \in I_u} w_{ij} S c_i, \quad
    u_j = \mathrm{squash}(z_j) = \frac{\|z_j\|^2}{1 + \|z_j\|^2} \frac{z_j}{\|z_j\|}, \quad
    b_{ij} \leftarrow b_{ij} + u_j^\top S c_i \quad (r \text{ times})

Training uses label-aware attention over the valid interests with the target ``e_t``,
:math:`v_u = \sum_j \mathrm{softmax}_j(\mathrm{pow}(u_j^\top e_t, p))\, u_j`, and a softmax
loss of :math:`v_u^\top e` over all items (``CE``) or BPR on sampled negatives. An item's
score at prediction is :math:`\max_j u_j^\top e_i` over the valid interests, which ranks
items exactly as the paper's per-interest retrieval merged by score.

Implementation notes (see ``docs/models.md``, "MIND"):

* ``|I_u|`` is the history length the model sees (``ITEM_SEQ_LEN``, at most
  ``MAX_ITEM_LIST_LENGTH``); the history is the first ``ITEM_SEQ_LEN`` positions of
  ``ITEM_SEQ``, as in the other models (not the non-zero ids). ``dynamic_k: False`` uses ``K`` interests for every user.
  Interests beyond ``K'_u`` are *invalid*: they take no routing weight (the softmax over
  interests runs over the valid ones only), never enter label-aware attention and never
  win the max at prediction.
* In training the routing logits are drawn from torch's global RNG for every sequence
  at every forward pass and never stored. They are drawn for ``MAX_ITEM_LIST_LENGTH``
  positions, so a sequence's draws do not depend on how much padding follows it.
* Routing is :func:`~recbole_selfattn.model.routing.b2i_routing` (it returns the last
  iteration's weights ``w_ij`` beside the capsules). ``routing_stop_grad: True``
  (ComiRec's; the default) updates the logits without gradient, so ``S`` and the item
  embeddings learn through the last iteration's :math:`z_j` only; ``False`` also
  differentiates through the earlier updates. ``routing_update_scale`` :math:`\alpha`
  multiplies the update, :math:`b_{ij} \leftarrow b_{ij} + \alpha u_j^\top S c_i` (paper: 1).
  On ml-100k the update's std is about 0.007 against :math:`\sigma = 1`: the random start,
  not the items, decides the routing unless :math:`\alpha` grows or ``routing_sigma``
  shrinks. ``routing_softmax: items`` normalises ``w_ij`` over the items of each interest
  instead of over the interests of each item (the paper); padded items are excluded either way.
* ``routing_init_eval`` sets the routing start at prediction (any forward pass in
  ``eval()`` mode). ``'random'`` is the paper's fresh draw, so every evaluation of one
  checkpoint ranks differently (one ml-1m checkpoint evaluated three times: NDCG@10
  0.0249, 0.0250, 0.0266). ``'fixed'`` (the default) starts every sequence from one draw
  of the same distribution, seeded with ``FIXED_ROUTING_SEED``, without consuming the
  global RNG: evaluations are identical and training after one is unchanged. The start
  differs across interests, as the paper's draws do (all-zero logits would collapse the
  interests into one vector). Training always uses the paper's random draws.
* Every score (label-aware attention's :math:`u_j^\top e_t`, the training logits
  :math:`v_u^\top e`, the prediction :math:`u_j^\top e_i`) is
  :math:`s(a, e) = \lambda\, a^\top e` (``score_type: dot``, the paper) or
  :math:`\lambda \cos(a, e)` (``score_type: cosine``), with :math:`\lambda` = ``score_scale``.
  Squash caps :math:`|u_j^\top e|` at :math:`\|e\|` (about 0.2 at the start on ml-100k):
  attention starts nearly uniform (largest weight 0.29 against 0.25) and the softmax flat.
  The default is cosine x 20, chosen on ml-100k validation NDCG@10 (one seed): dot x 1
  0.0263, cosine x 5/10/20/30/50 0.0373/0.0435/0.0492/0.0453/0.0395
  (``results/studies/mind-ml-100k``, ``results/studies/mind-scale-ml-100k``).
* ``pow`` is sign-preserving, :math:`\mathrm{sign}(x)|x|^p`, because a plain power of a
  negative similarity is NaN (non-integer ``p``) or flips its order (even ``p``). ``p = 0``
  is :math:`x^0 = 1`, the uniform mean over the valid interests. For
  ``p >= pow_hard_threshold`` (the paper's :math:`p \to \infty`) the attention is a hard
  argmax, which avoids overflowing :math:`|x|^p`; below it, overflowing powers are clamped
  to the largest float.
* ``interest_mlp: True`` applies a ReLU layer (``d -> d``) to the interest capsules, the
  paper's ReLU layers without the user-profile features this generic model does not have.
* With ``loss_type: BPR`` the user vector is the label-aware one built with the positive
  target; the negatives RecBole's sampler drew (``train_neg_sample_args``) are scored
  against it. ``sampled_loss: BPR`` is BPR against each row's own negative;
  ``sampled_loss: softmax`` is the paper's sampled softmax: each row's target against the
  negatives of all rows of the batch (one pool, as TensorFlow's sampled softmax shares
  it), a negative equal to the row's target left out. No :math:`\log Q` correction is
  applied, which is exact for ``distribution: uniform``.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.init import xavier_normal_

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.loss import BPRLoss

from recbole_selfattn.config import is_int, is_number, require
from recbole_selfattn.fastpath.embedding import Embedding, lookup
from recbole_selfattn.model.routing import b2i_routing, initial_logits

# Seed of the routing start at prediction with ``routing_init_eval: fixed``.
FIXED_ROUTING_SEED = 0


def _is_power(value):
    """A finite number, or ``inf`` (the ``p -> inf`` limit of label-aware attention)."""
    return is_number(value) or value == float("inf")


# Hyper-parameter: (test, what a valid value is); checked in MIND.__init__.
HYPER_PARAMETERS = {
    "interest_num": (lambda v: is_int(v) and v >= 1, "an integer >= 1"),
    "routing_iters": (lambda v: is_int(v) and v >= 1, "an integer >= 1"),
    "pow_p": (lambda v: _is_power(v) and v >= 0, "a number >= 0 (inf: hard readout)"),
    "pow_hard_threshold": (lambda v: _is_power(v) and v > 0, "a number > 0 (inf: never hard)"),
    "routing_sigma": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "routing_softmax": (lambda v: v in ("interests", "items"), "'interests' or 'items'"),
    "routing_init_eval": (lambda v: v in ("fixed", "random"), "'fixed' or 'random'"),
    "dynamic_k": (lambda v: isinstance(v, bool), "true or false"),
    "interest_mlp": (lambda v: isinstance(v, bool), "true or false"),
    "routing_update_scale": (lambda v: is_number(v) and v > 0, "a number > 0"),
    "routing_stop_grad": (lambda v: isinstance(v, bool), "true or false"),
    "score_type": (lambda v: v in ("dot", "cosine"), "'dot' or 'cosine'"),
    "score_scale": (lambda v: is_number(v) and v > 0, "a number > 0"),
    "loss_type": (lambda v: v in ("CE", "BPR"), "'CE' or 'BPR'"),
}


class MIND(SequentialRecommender):
    r"""MIND: B2I dynamic routing into several interest capsules per user, label-aware
    attention for training and the max over interests for ranking."""

    def __init__(self, config, dataset):
        super(MIND, self).__init__(config, dataset)

        # load parameters info
        for key, (ok, expected) in HYPER_PARAMETERS.items():
            require(config, key, ok, expected)
        require(
            config,
            "sampled_loss",
            lambda v: v == "BPR" or (v == "softmax" and config["loss_type"] == "BPR"),
            "'BPR' or 'softmax'; both score RecBole's sampled negatives, so 'softmax' needs loss_type BPR "
            "and train_neg_sample_args",
        )
        if config["loss_type"] == "BPR":
            require(
                config,
                "train_neg_sample_args",
                lambda v: v["distribution"] in ("uniform", "popularity"),
                "a sampling dict such as {'distribution': 'uniform', 'sample_num': 1} when loss_type is BPR",
            )
        self.embedding_size = config["embedding_size"]
        self.interest_num = config["interest_num"]
        self.routing_iters = config["routing_iters"]
        self.pow_p = float(config["pow_p"])
        self.hard_attention = self.pow_p >= config["pow_hard_threshold"]
        self.routing_sigma = float(config["routing_sigma"])
        self.softmax_over_items = config["routing_softmax"] == "items"
        self.fixed_eval_routing = config["routing_init_eval"] == "fixed"
        self.routing_update_scale = float(config["routing_update_scale"])
        self.routing_stop_grad = config["routing_stop_grad"]
        self.cosine_scores = config["score_type"] == "cosine"
        self.score_scale = float(config["score_scale"])
        self.dynamic_k = config["dynamic_k"]
        self.loss_type = config["loss_type"]
        self.sampled_softmax = config["sampled_loss"] == "softmax"

        # define layers and loss
        self.item_embedding = Embedding(self.n_items, self.embedding_size, padding_idx=0)
        self.S = nn.Parameter(torch.empty(self.embedding_size, self.embedding_size))
        self.interest_layer = (
            nn.Sequential(nn.Linear(self.embedding_size, self.embedding_size), nn.ReLU())
            if config["interest_mlp"]
            else nn.Identity()
        )
        self.loss_fct = BPRLoss() if self.loss_type == "BPR" else nn.CrossEntropyLoss()

        # parameters initialization
        self.apply(self._init_weights)
        xavier_normal_(self.S)

    def _init_weights(self, module):
        if isinstance(module, nn.Embedding):
            xavier_normal_(module.weight)
        elif isinstance(module, nn.Linear):
            xavier_normal_(module.weight)
            module.bias.data.zero_()

    def interest_mask(self, item_seq_len):
        r"""``[B, K]`` bool, True for the user's ``K'_u`` valid interests.

        ``floor(log2 n)`` is the binary exponent of ``n`` minus one (exact, no rounding)."""
        if not self.dynamic_k:
            return torch.ones_like(item_seq_len, dtype=torch.bool).unsqueeze(1).expand(-1, self.interest_num)
        k = torch.arange(self.interest_num, device=item_seq_len.device)
        floor_log2 = torch.frexp(item_seq_len.float())[1] - 1
        k_user = floor_log2.clamp(min=1, max=self.interest_num)
        return k.unsqueeze(0) < k_user.unsqueeze(1)

    def _initial_logits(self, batch_size, seq_len, device):
        r"""Initial routing logits ``[B, L, K]`` (:func:`~recbole_selfattn.model.routing.initial_logits`):
        fresh draws in training and with ``routing_init_eval: random``, else the fixed start."""
        seed = None if self.training or not self.fixed_eval_routing else FIXED_ROUTING_SEED
        positions = max(seq_len, self.max_seq_length)
        logits = initial_logits(batch_size, positions, self.interest_num, self.routing_sigma, device, seed)
        return logits[:, :seq_len]

    def behaviour_capsules(self, item_seq):
        r"""The mapped behaviour capsules ``S c_i = S e_i`` ``[B, L, d]`` of the items ``[B, L]``.

        ``S`` is linear, so it maps the fewer rows: the looked-up ones, or the item table
        before the lookup where it is smaller (on the ml-1m benchmark 3,124 table rows
        against 204,800 looked-up rows per batch; on Tmall's batches of 100, the rows)."""
        if self.n_items < item_seq.numel():
            return lookup(self.item_embedding.weight @ self.S.t(), item_seq, self.item_embedding.padding_idx)
        return self.item_embedding(item_seq) @ self.S.t()

    def b2i_routing(self, low_capsules, item_mask, interest_mask):
        r"""B2I dynamic routing (Algorithm 1) of the behaviour capsules ``c_i = e_i``.

        Args:
            low_capsules (torch.Tensor): the mapped behaviour capsules ``S c_i``, ``[B, L, d]``
                (:meth:`behaviour_capsules`).
            item_mask (torch.BoolTensor): real (non-padded) items, ``[B, L]``.
            interest_mask (torch.BoolTensor): valid interests, ``[B, K]``.

        Returns:
            tuple: interest capsules ``u_j`` ``[B, K, d]`` and the last iteration's routing
            weights ``w_ij`` ``[B, L, K]`` (:func:`~recbole_selfattn.model.routing.b2i_routing`).
        """
        logits = self._initial_logits(low_capsules.size(0), low_capsules.size(1), low_capsules.device)
        return b2i_routing(
            low_capsules, logits, item_mask, interest_mask, self.routing_iters,
            over_items=self.softmax_over_items, update_scale=self.routing_update_scale,
            stop_grad=self.routing_stop_grad,
        )

    def forward(self, item_seq, item_seq_len):
        r"""Interest capsules ``[B, K, d]`` and their validity mask ``[B, K]`` (:meth:`route`)."""
        interests, interest_mask, _ = self.route(item_seq, item_seq_len)
        return interests, interest_mask

    def route(self, item_seq, item_seq_len):
        r"""Interest capsules ``[B, K, d]``, their validity mask ``[B, K]`` and the routing
        weights ``w_ij`` ``[B, L', K]`` that built them, ``L' = max(ITEM_SEQ_LEN)``.

        A history's items are its first ``ITEM_SEQ_LEN`` positions (whatever ids follow
        them). The positions after the batch's longest history are padding in every row
        and are cut off before routing: that changes no output (padded items are masked
        and the routing logits of the real ones are the same draws) but the cost."""
        item_seq = item_seq[:, : int(item_seq_len.max())]
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        item_mask = positions.unsqueeze(0) < item_seq_len.unsqueeze(1)  # [B, L]
        interest_mask = self.interest_mask(item_seq_len)
        interests, weights = self.b2i_routing(self.behaviour_capsules(item_seq), item_mask, interest_mask)
        return self.interest_layer(interests), interest_mask, weights

    def _score_vectors(self, vectors):
        """``vectors`` as the scores use them: unit length with ``score_type: cosine``."""
        return F.normalize(vectors, dim=-1) if self.cosine_scores else vectors

    def score(self, users, items):
        r"""Scores :math:`s(a, e)` of user-side vectors ``[..., d]`` against items ``[N, d]``: ``[..., N]``.

        :math:`\lambda` scales the user side, not the ``[..., N]`` product: two passes fewer
        over the scores (forward and backward)."""
        users = self.score_scale * self._score_vectors(users)
        return torch.matmul(users, self._score_vectors(items).transpose(0, 1))

    def score_rows(self, users, items):
        r"""Scores :math:`s(a, e)` of user-side vectors ``[B, ..., d]`` against their row's item ``[B, d]``: ``[B, ...]``."""
        users, items = self._score_vectors(users), self._score_vectors(items)
        return self.score_scale * torch.einsum("b...d,bd->b...", users, items)

    def label_attention(self, interests, interest_mask, target_emb):
        r"""The label-aware attention weights ``softmax_j(pow(u_j . e_t, p))``, ``[B, K]``.

        Invalid interests get weight 0; ``p >= pow_hard_threshold`` gives the one-hot
        argmax (the paper's :math:`p \to \infty`)."""
        scores = self.score_rows(interests, target_emb)
        if self.hard_attention:
            best = scores.masked_fill(~interest_mask, float("-inf")).argmax(dim=1)
            return F.one_hot(best, self.interest_num).to(interests.dtype)
        if self.pow_p == 0:
            powered = torch.zeros_like(scores)
        else:
            # invalid interests get a harmless 1 first: |0|^p has an infinite gradient for p < 1
            scores = scores.masked_fill(~interest_mask, 1.0)
            powered = torch.sign(scores) * scores.abs().pow(self.pow_p)
            limit = torch.finfo(powered.dtype).max
            powered = powered.clamp(min=-limit, max=limit)
        return powered.masked_fill(~interest_mask, float("-inf")).softmax(dim=1)

    def label_aware_attention(self, interests, interest_mask, target_emb):
        r"""``v_u = sum_j softmax_j(pow(u_j . e_t, p)) u_j`` over the valid interests, ``[B, d]``."""
        attention = self.label_attention(interests, interest_mask, target_emb)
        return torch.einsum("bk,bkd->bd", attention, interests)

    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        interests, interest_mask = self.forward(item_seq, item_seq_len)
        pos_items = interaction[self.POS_ITEM_ID]
        pos_items_emb = self.item_embedding(pos_items)
        seq_output = self.label_aware_attention(interests, interest_mask, pos_items_emb)
        if self.loss_type == "CE":
            return self.loss_fct(self.score(seq_output, self.item_embedding.weight), pos_items)
        neg_items = interaction[self.NEG_ITEM_ID]
        pos_score = self.score_rows(seq_output, pos_items_emb)  # [B]
        if not self.sampled_softmax:
            return self.loss_fct(pos_score, self.score_rows(seq_output, self.item_embedding(neg_items)))
        return self.sampled_softmax_loss(seq_output, pos_score, pos_items, neg_items)

    def sampled_softmax_loss(self, seq_output, pos_score, pos_items, neg_items):
        r"""Cross-entropy of each row's target against the batch's pooled negatives.

        Row ``b``'s logits are its target's score and its scores of every negative
        ``neg_items`` of the batch; a negative equal to ``pos_items[b]`` (an accidental
        hit) is masked out of row ``b``."""
        neg_scores = self.score(seq_output, self.item_embedding(neg_items))  # [B, P]
        neg_scores = neg_scores.masked_fill(neg_items.unsqueeze(0) == pos_items.unsqueeze(1), float("-inf"))
        logits = torch.cat([pos_score.unsqueeze(1), neg_scores], dim=1)
        return -logits.log_softmax(dim=1)[:, 0].mean()

    def _max_over_interests(self, interest_scores, interest_mask):
        r"""Max over the valid interests of ``[B, K, ...]`` scores."""
        mask = interest_mask.view(*interest_mask.shape, *([1] * (interest_scores.dim() - 2)))
        return interest_scores.masked_fill(~mask, float("-inf")).max(dim=1).values

    def predict(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        test_item_emb = self.item_embedding(interaction[self.ITEM_ID])
        interests, interest_mask = self.forward(item_seq, item_seq_len)
        scores = self.score_rows(interests, test_item_emb)  # [B, K]
        return self._max_over_interests(scores, interest_mask)  # [B]

    def full_sort_predict(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        interests, interest_mask = self.forward(item_seq, item_seq_len)
        scores = self.score(interests, self.item_embedding.weight)  # [B, K, n_items]
        return self._max_over_interests(scores, interest_mask)  # [B, n_items]

