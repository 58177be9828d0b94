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
  at every forward pass, are never stored, and are updated without gradient: ``S`` and
  the item embeddings are trained through the last iteration's
  :math:`z_j = \sum_i w_{ij} S c_i` only. They are drawn for ``MAX_ITEM_LIST_LENGTH``
  positions, so a sequence's draws do not depend on how much padding follows it.
* ``routing_init_eval`` sets the routing start at prediction (``predict``,
  ``full_sort_predict``, any forward pass in ``eval()`` mode). ``'random'`` is the
  paper's fresh :math:`b_{ij} \sim \mathcal{N}(0, \sigma^2)` draw, so every evaluation
  of one checkpoint ranks differently (a review evaluated one ml-1m checkpoint three
  times: NDCG@10 0.0249, 0.0250, 0.0266). ``'fixed'`` (the default) starts every
  sequence from one draw of the same distribution, :math:`b_{ij} = \sigma g_{ij}` with
  :math:`g \in \mathbb{R}^{L \times K}` drawn by a ``torch.Generator`` seeded with
  ``FIXED_ROUTING_SEED``: evaluations are identical, and the global RNG is not consumed,
  so training after an evaluation is unchanged. The start differs across interests, as
  the paper's draws do (all-zero logits would give every interest the same weights and
  collapse them into one vector). Training always uses the paper's random draws.
* ``routing_softmax: items`` normalises ``w_ij`` over the history items of each interest
  instead of over the interests of each item (the paper, like Sabour et al.'s capsule
  routing); some reimplementations do that. Padded items are excluded either way.
* ``squash`` computes :math:`\|z\| = \sqrt{\|z\|^2 + 10^{-9}}` (as ComiRec does) so an
  all-zero ``z`` has a finite gradient.
* ``pow`` is sign-preserving, :math:`\mathrm{sign}(x)|x|^p`, because a plain power of a
  negative similarity is NaN (non-integer ``p``) or flips its order (even ``p``). ``p = 0``
  is :math:`x^0 = 1`, the uniform mean over the valid interests. For
  ``p >= pow_hard_threshold`` (the paper's :math:`p \to \infty`) the attention is a hard
  argmax, which avoids overflowing :math:`|x|^p`; below it, overflowing powers are clamped
  to the largest float.
* ``interest_mlp: True`` applies a ReLU layer (``d -> d``) to the interest capsules, the
  paper's ReLU layers without the user-profile features this generic model does not have.
* With ``loss_type: BPR`` the user vector is the label-aware one built with the positive
  target, as in the paper's sampled softmax; the negatives are scored against it.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.init import xavier_normal_

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.loss import BPRLoss

from recbole_selfattn.config import require

# Seed of the routing start at prediction with ``routing_init_eval: fixed``.
FIXED_ROUTING_SEED = 0


class MIND(SequentialRecommender):
    r"""MIND: B2I dynamic routing into several interest capsules per user, label-aware
    attention for training and the max over interests for ranking."""

    def __init__(self, config, dataset):
        super(MIND, self).__init__(config, dataset)

        # load parameters info
        require(config, "interest_num", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
        require(config, "routing_iters", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
        require(config, "pow_p", lambda v: _is_number(v) and v >= 0, "a number >= 0")
        require(config, "pow_hard_threshold", lambda v: _is_number(v) and v > 0, "a number > 0")
        require(config, "routing_sigma", lambda v: _is_number(v) and v >= 0, "a number >= 0")
        require(config, "routing_softmax", lambda v: v in ("interests", "items"), "'interests' or 'items'")
        require(config, "routing_init_eval", lambda v: v in ("fixed", "random"), "'fixed' or 'random'")
        require(config, "dynamic_k", lambda v: isinstance(v, bool), "true or false")
        require(config, "interest_mlp", lambda v: isinstance(v, bool), "true or false")
        require(config, "loss_type", lambda v: v in ("CE", "BPR"), "'CE' or 'BPR'")
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
        self.dynamic_k = config["dynamic_k"]
        self.loss_type = config["loss_type"]

        # define layers and loss
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
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
        r"""Initial routing logits ``b_ij ~ N(0, sigma^2)``, ``[B, L, K]``.

        In training, and at prediction with ``routing_init_eval: random``, they are fresh
        draws from torch's global RNG for every sequence. At prediction with ``fixed``,
        every sequence gets the same draw from a generator seeded with
        ``FIXED_ROUTING_SEED`` (on the CPU, so every device gets the same logits), and the
        global RNG is left untouched.

        They are drawn for ``MAX_ITEM_LIST_LENGTH`` positions whatever the batch's padded
        length ``L`` (torch's generators do not give a longer draw the same prefix), so a
        sequence's logits do not depend on how much padding follows it."""
        positions = max(seq_len, self.max_seq_length)
        if self.training or not self.fixed_eval_routing:
            logits = torch.randn(batch_size, positions, self.interest_num, device=device)
        else:
            generator = torch.Generator().manual_seed(FIXED_ROUTING_SEED)
            fixed = torch.randn(positions, self.interest_num, generator=generator)
            logits = fixed.to(device).expand(batch_size, -1, -1)
        return logits[:, :seq_len] * self.routing_sigma

    @staticmethod
    def squash(z):
        r"""``||z||^2 / (1 + ||z||^2) * z / ||z||`` over the last dimension."""
        squared_norm = z.pow(2).sum(dim=-1, keepdim=True)
        return squared_norm / (1 + squared_norm) / torch.sqrt(squared_norm + 1e-9) * z

    def b2i_routing(self, item_emb, item_mask, interest_mask):
        r"""B2I dynamic routing (Algorithm 1).

        Args:
            item_emb (torch.Tensor): behaviour capsules, ``[B, L, d]``.
            item_mask (torch.BoolTensor): real (non-padded) items, ``[B, L]``.
            interest_mask (torch.BoolTensor): valid interests, ``[B, K]``.

        Returns:
            tuple: interest capsules ``u_j`` ``[B, K, d]`` and the last iteration's routing
            weights ``w_ij`` ``[B, L, K]`` (0 for padded items; with the softmax over
            interests, also for invalid interests).
        """
        low_capsules = torch.matmul(item_emb, self.S.t())  # [B, L, d], row i is S c_i
        logits = self._initial_logits(item_emb.size(0), item_emb.size(1), item_emb.device)
        if self.softmax_over_items:
            pad = ~item_mask.unsqueeze(2)  # normalise over the real items of each interest
            softmax_dim = 1
        else:
            pad = ~interest_mask.unsqueeze(1)  # normalise over the valid interests of each item
            softmax_dim = 2
        item_weight = item_mask.unsqueeze(2).to(item_emb.dtype)
        for iteration in range(self.routing_iters):
            weights = logits.masked_fill(pad, torch.finfo(logits.dtype).min).softmax(dim=softmax_dim)
            weights = weights * item_weight  # [B, L, K]; padded items add nothing
            interests = self.squash(torch.einsum("blk,bld->bkd", weights, low_capsules))
            if iteration < self.routing_iters - 1:
                with torch.no_grad():
                    logits = logits + torch.einsum("bkd,bld->blk", interests, low_capsules)
        return interests, weights

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
        item_emb = self.item_embedding(item_seq)
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        item_mask = positions.unsqueeze(0) < item_seq_len.unsqueeze(1)  # [B, L]
        interest_mask = self.interest_mask(item_seq_len)
        interests, weights = self.b2i_routing(item_emb, item_mask, interest_mask)
        return self.interest_layer(interests), interest_mask, weights

    def label_attention(self, interests, interest_mask, target_emb):
        r"""The label-aware attention weights ``softmax_j(pow(u_j . e_t, p))``, ``[B, K]``.

        Invalid interests get weight 0; ``p >= pow_hard_threshold`` gives the one-hot
        argmax (the paper's :math:`p \to \infty`)."""
        scores = torch.einsum("bkd,bd->bk", interests, target_emb)
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
        if self.loss_type == "BPR":
            neg_items_emb = self.item_embedding(interaction[self.NEG_ITEM_ID])
            pos_score = torch.sum(seq_output * pos_items_emb, dim=-1)  # [B]
            neg_score = torch.sum(seq_output * neg_items_emb, dim=-1)  # [B]
            return self.loss_fct(pos_score, neg_score)
        logits = torch.matmul(seq_output, self.item_embedding.weight.transpose(0, 1))
        return self.loss_fct(logits, pos_items)

    def _max_over_interests(self, interest_scores, interest_mask):
        r"""Max over the valid interests of ``[B, K, ...]`` scores."""
        mask = interest_mask.view(*interest_mask.shape, *([1] * (interest_scores.dim() - 2)))
        return interest_scores.masked_fill(~mask, float("-inf")).max(dim=1).values

    def predict(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        test_item_emb = self.item_embedding(interaction[self.ITEM_ID])
        interests, interest_mask = self.forward(item_seq, item_seq_len)
        scores = torch.einsum("bkd,bd->bk", interests, test_item_emb)
        return self._max_over_interests(scores, interest_mask)  # [B]

    def full_sort_predict(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        interests, interest_mask = self.forward(item_seq, item_seq_len)
        scores = torch.matmul(interests, self.item_embedding.weight.transpose(0, 1))  # [B, K, n_items]
        return self._max_over_interests(scores, interest_mask)  # [B, n_items]


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
