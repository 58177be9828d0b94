"""
MTAW
################################################

Reference:
    Kai Ouyang et al. "Mining Interest Trends and Adaptively Assigning Sample
    Weight for Session-based Recommendation." in SIGIR 2023 (arXiv 2306.11610).

No public code exists; this follows the paper's equations (``docs/models.md``, "MTAW"):

* embedding, ``x_k = e_{i_k} + p_k`` (item plus learned position embedding);
* Interest Tracking Layer (ITL), ``Q_x = ReLU(MLP(x_t))``,
  ``l'_t = Attention(Q_x, X'_t, X'_t)`` over the prefix ``X'_t = {x_1 .. x_t}``
  (all steps at once under a causal mask, which over right-padded sequences
  keeps every real step to real steps), then
  ``L = LayerNorm(L' + Dropout(FFN(L')))`` with ``FFN = MLP(ReLU(MLP(.)))``;
  ``n_layers`` ITLs are stacked;
* Interest Enhancing Layer (IEL), ``Q_l = ReLU(MLP(l_m))`` from the last real
  instant interest, ``O = Attention(Q_l, L, L)`` over the session's instant
  interests;
* scores ``tau * cos(O, e_i)`` with a softmax over all items, and the AW loss
  ``-(2 - 2p)^gamma * log p`` (:class:`AWLoss`). The paper writes the
  candidate as ``L2Norm(x_i)``; a candidate has no position, so ``x_i = e_i``.
  ``tau`` is the fixed ``scale``, or with ``learn_scale`` a learned parameter
  (an option of this implementation; the paper gives no value for ``tau``).

``Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V``: keys and values are the
layer's inputs themselves (no projections), as the paper writes it.

Where the paper is ambiguous, the default is the reading above and options give the
others (issue 12 measures them on validation):

* ``itl_residual``: the residual of "a residual connection and layer normalisation"
  after the FFN adds the FFN's input, ``LayerNorm(L' + Dropout(FFN(L')))`` (``ffn``);
  or the layer's input, ``LayerNorm(X + Dropout(FFN(L')))`` (``input``); or both, as a
  Transformer block, ``H = LayerNorm(X + L')``, ``LayerNorm(H + Dropout(FFN(H)))`` (``both``).
* ``kv_projection: True`` gives every attention (ITL and IEL) linear key and value maps,
  ``Attention(Q, W_K X + b_K, W_V X + b_V)``, as a Transformer's.
* ``position_order``: ``p_k`` counts from the session's first item, ``k = 1 .. m``
  (``forward``), or back from its last, ``k = m .. 1`` (``reverse``, the reversed position
  embedding of S^2-DHCN and GCE-GNN). Reversed, ``l_t`` depends on the session length ``m``
  as well as on the first ``t`` items.
"""

import math

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from recbole_selfattn.config import require
from recbole_selfattn.model.layers import AWLoss, InterestTrackingLayer, key_value_maps


class MTAW(SequentialRecommender):
    r"""MTAW tracks the instant interest at every step of the session (ITL),
    integrates the instant interests with the last one as query (IEL), and
    ranks items by scaled cosine similarity trained with the AW loss.

    NOTE:
        The paper gives no value for the cosine scale ``tau``; ``scale`` was
        chosen on ml-100k validation (see ``MTAW.yaml``). On the protocol's
        item sets that ``tau`` starves the AW loss: ``tau * cos`` lies in
        ``[-tau, tau]``, so even a target at cosine 1 against random item
        vectors gets only this softmax probability ``p`` (the model's own
        scores, mean over 200 targets; ``N`` item ids with padding):

        ====================  =====  =====  =====  =====  =====
        items N, d            tau 4  8      12     16     20
        ====================  =====  =====  =====  =====  =====
        ml-1m 3,124, 64       0.015  0.367  0.945  0.998  1.000
        ml-1m 3,124, 100      0.016  0.410  0.962  0.999  1.000
        Tmall 40,728, 64      0.001  0.043  0.569  0.969  0.998
        Tmall 40,728, 100     0.001  0.050  0.661  0.984  0.999
        ====================  =====  =====  =====  =====  =====

        At ``tau = 4`` every sample has ``p`` far below 0.5, its weight is
        ``(2 - 2p)^gamma ~ 2^gamma``, and the AW loss is a constant multiple
        of cross-entropy, which Adam's scale invariance cancels. On Tmall
        (session protocol, 2-epoch reduced budget) validation MRR@20 chose
        ``tau = 16`` over 4 (0.2058 against 0.1737; 12: 0.2057), and AW
        weighs 10.8 % of the samples below 1 there against none at 4: the
        session protocol sets it (``properties/benchmark/session/MTAW.yaml``).
        ``learn_scale`` learns ``tau = exp(log_scale)``, starting at
        ``scale``; ``weight_decay`` then pulls ``log tau`` towards 0. The
        trainer logs :meth:`epoch_statistics` (mean AW weight, share of
        samples with ``p > 0.5``) after every training epoch to show
        whether AW acts.

        The FFN's hidden width equals ``embedding_size`` (the paper gives
        none). Item 0 is padding: its embedding is zero, it is left out of
        the training softmax, and its score in ``full_sort_predict`` is 0
        (RecBole masks it anyway).
    """

    input_type = InputType.POINTWISE  # full softmax over all items: no sampled negatives

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        require(config, "n_layers", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1")
        require(config, "dropout_prob", lambda v: 0 <= v < 1, "a number in [0, 1)")
        require(config, "scale", lambda v: v > 0 and math.isfinite(v), "a number > 0")
        require(config, "learn_scale", lambda v: isinstance(v, bool), "True or False")
        require(config, "aw_gamma", lambda v: v >= 0 and math.isfinite(v), "a number >= 0")
        require(config, "layer_norm_eps", lambda v: v > 0, "a number > 0")
        require(config, "initializer_range", lambda v: v > 0, "a number > 0")
        require(config, "itl_residual", lambda v: v in ("ffn", "input", "both"), "'ffn', 'input' or 'both'")
        require(config, "kv_projection", lambda v: isinstance(v, bool), "True or False")
        require(config, "position_order", lambda v: v in ("forward", "reverse"), "'forward' or 'reverse'")
        self.embedding_size = config["embedding_size"]
        self.n_layers = config["n_layers"]
        self.dropout_prob = config["dropout_prob"]
        self.scale = float(config["scale"])
        self.learn_scale = config["learn_scale"]
        self.aw_gamma = float(config["aw_gamma"])
        self.layer_norm_eps = config["layer_norm_eps"]
        self.initializer_range = config["initializer_range"]
        self.reverse_positions = config["position_order"] == "reverse"

        # define layers and loss
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, self.embedding_size)
        self.itl_layers = nn.ModuleList(
            InterestTrackingLayer(
                self.embedding_size, self.dropout_prob, self.layer_norm_eps, config["itl_residual"], config["kv_projection"]
            )
            for _ in range(self.n_layers)
        )
        self.iel_query = nn.Linear(self.embedding_size, self.embedding_size)
        self.iel_key, self.iel_value = key_value_maps(self.embedding_size, config["kv_projection"])
        self.loss_fct = AWLoss(self.aw_gamma)
        if self.learn_scale:
            self.log_scale = nn.Parameter(torch.tensor(math.log(self.scale)))  # tau = exp(log_scale) > 0

        # parameters initialization
        self.apply(self._init_weights)
        self.item_embedding.weight.data[0].zero_()

    def _init_weights(self, module):
        """Normal(0, initializer_range) weights and zero biases, as RecBole's SASRec."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    @staticmethod
    def _valid_positions(item_seq, item_seq_len):
        """``[B, T]`` True at the real (non-padding) positions of each sequence."""
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        return positions.unsqueeze(0) < item_seq_len.unsqueeze(1)

    def interest_tracking(self, item_seq, item_seq_len):
        r"""Instant interests ``L = {l_1 .. l_T}`` ``[B, T, d]`` after the stacked
        ITLs. ``l_t`` depends only on the first ``t`` items (and, with
        ``position_order: reverse``, on the session length); rows at padded
        positions are defined but meaningless."""
        seq_length = item_seq.size(1)
        positions = torch.arange(seq_length, device=item_seq.device)
        if self.reverse_positions:  # the last item is position 0; padded positions are masked
            positions = (item_seq_len.unsqueeze(1) - 1 - positions).clamp(min=0)
        x = self.item_embedding(item_seq) + self.position_embedding(positions)
        for layer in self.itl_layers:
            x = layer(x)  # causal: a real step sees real steps only (sequences are right-padded)
        return x

    def interest_enhancing(self, item_seq, item_seq_len):
        r"""The IEL's inputs and weights: instant interests ``L`` ``[B, T', d]`` and
        ``softmax(Q_l K^T / sqrt(d))`` ``[B, T']`` over them (``K = L``, or ``iel_key(L)``
        with ``kv_projection``) (0 at padded positions),
        where ``T' = max(ITEM_SEQ_LEN)``.

        The positions after the batch's longest session are padding in every row;
        they are cut off first. That changes no output (``l_t`` is causal and padded
        keys are masked, so ``l_m`` and ``O`` are the same) but the cost: Tmall
        sessions average 6.7 of the 50 positions."""
        item_seq = item_seq[:, : int(item_seq_len.max())]
        instant = self.interest_tracking(item_seq, item_seq_len)
        last = self.gather_indexes(instant, item_seq_len - 1)  # l_m, [B, d]
        query = F.relu(self.iel_query(last))  # Q_l, [B, d]
        keys = self.iel_key(instant)  # L itself unless kv_projection
        logits = torch.einsum("btd,bd->bt", keys, query) / math.sqrt(self.embedding_size)
        valid = self._valid_positions(item_seq, item_seq_len)  # [B, T']
        return instant, logits.masked_fill(~valid, float("-inf")).softmax(dim=-1)

    def forward(self, item_seq, item_seq_len):
        """Session representation ``O`` ``[B, d]`` (before L2 normalisation): the
        instant interests (through ``iel_value``, the identity unless
        ``kv_projection``) weighted by :meth:`interest_enhancing`."""
        instant, weights = self.interest_enhancing(item_seq, item_seq_len)
        return torch.einsum("bt,btd->bd", weights, self.iel_value(instant))

    def tau(self):
        """The cosine scale: ``exp(log_scale)`` with ``learn_scale``, else ``scale``."""
        return self.log_scale.exp() if self.learn_scale else self.scale

    def epoch_statistics(self):
        """What the AW loss saw since the last call (:meth:`AWLoss.statistics`;
        this process's samples in a distributed run), with the learned
        ``scale`` if ``learn_scale``; the trainer logs it after every training
        epoch."""
        statistics = self.loss_fct.statistics()
        if self.learn_scale:
            statistics["scale"] = self.tau().item()
        return statistics

    def _scores(self, seq_output, item_emb):
        """``tau * cos(O, e_i)``: ``[B, d] x [K, d] -> [B, K]``."""
        return self.tau() * F.normalize(seq_output, dim=-1) @ F.normalize(item_emb, dim=-1).t()

    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        seq_output = self.forward(item_seq, item_seq_len)
        # softmax over the real items 1..N-1: the padding item is no candidate
        # (and its zero embedding has no direction to normalise)
        logits = self._scores(seq_output, self.item_embedding.weight[1:])
        return self.loss_fct(logits, interaction[self.POS_ITEM_ID] - 1)

    def predict(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        seq_output = F.normalize(self.forward(item_seq, item_seq_len), dim=-1)
        test_item_emb = F.normalize(self.item_embedding(interaction[self.ITEM_ID]), dim=-1)
        return self.tau() * (seq_output * test_item_emb).sum(dim=-1)  # [B]

    def full_sort_predict(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        seq_output = self.forward(item_seq, item_seq_len)
        return self._scores(seq_output, self.item_embedding.weight)  # [B, n_items]
