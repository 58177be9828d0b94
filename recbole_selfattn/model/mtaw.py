"""
MTAW
################################################

Reference:
    Kai Ouyang et al. "Mining Interest Trends and Adaptively Assigning Sample
    Weight for Session-based Recommendation." in SIGIR 2023 (arXiv 2306.11610).

No public code exists; this follows the paper's equations (MODELS.md section 2):

* embedding, ``x_k = e_{i_k} + p_k`` (item plus learned position embedding);
* Interest Tracking Layer (ITL), ``Q_x = ReLU(MLP(x_t))``,
  ``l'_t = Attention(Q_x, X'_t, X'_t)`` over the prefix ``X'_t = {x_1 .. x_t}``
  (all steps at once under a causal + padding mask), then
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
"""

import math

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from recbole_selfattn.config import require


class AWLoss(nn.Module):
    r"""Adaptive-weight loss, ``-(2 - 2p)^gamma * log p``, averaged over the batch.

    ``p`` is the softmax probability of the target. The factor is above 1 for
    hard samples (``p < 0.5``) and below 1 for easy ones; ``gamma = 0`` is
    exactly cross-entropy. The paper writes a sum over samples; the mean (as
    ``F.cross_entropy``) only rescales the learning rate.

    In training mode it also sums, without gradient and from the same ``p``
    (no further pass over the logits), what :meth:`statistics` reports: the
    samples' mean weight and the share with ``p > 0.5`` (weight below 1 when
    ``gamma > 0``).

    One pass over the ``[B, N]`` logits: ``-log p`` is ``F.cross_entropy``
    (stable ``log_softmax``), and ``1 - p = -expm1(log p)`` comes from ``log p``
    alone (``expm1`` keeps it accurate when ``p`` is small or close to 1). Where
    ``p`` rounds to exactly 1, ``log p = 0`` and the sample's loss is 0 whatever
    its weight; ``1 - p`` is then clamped to the smallest normal float so the
    weight's gradient stays finite for ``0 < gamma < 1``.
    """

    def __init__(self, gamma):
        super().__init__()
        self.gamma = gamma
        # [sum of weights, count with p > 0.5, count] of the training samples
        # since statistics() last ran, on the logits' device (None: none yet).
        # The count is a tensor too: a Python int attribute changing every
        # batch would make torch.compile recompile the loss every batch.
        self._sums = None

    def forward(self, logits, target):
        """``logits`` ``[B, N]``, ``target`` ``[B]`` (class indices) -> scalar loss."""
        nll = F.cross_entropy(logits, target, reduction="none")  # -log p, [B]
        one_minus_p = (-torch.expm1(-nll)).clamp(min=torch.finfo(nll.dtype).tiny)
        weight = (2 * one_minus_p).pow(self.gamma)  # (2 - 2p)^gamma
        if self.training:
            with torch.no_grad():
                easy = (one_minus_p < 0.5).sum().to(weight.dtype)
                sums = torch.stack([weight.sum(), easy, weight.new_tensor(nll.numel())])
                self._sums = sums if self._sums is None else self._sums + sums
        if self.gamma == 0:
            return nll.mean()
        return (weight * nll).mean()

    def statistics(self):
        """``{"aw_mean_weight", "aw_easy_share"}`` over the training samples seen
        since the last call (``{}`` if none): the mean AW weight ``(2 - 2p)^gamma``
        and the share of samples with ``p > 0.5``. Starts counting afresh."""
        if self._sums is None:
            return {}
        mean_weight, easy_share = (self._sums[:2] / self._sums[2]).tolist()
        self._sums = None
        return {"aw_mean_weight": mean_weight, "aw_easy_share": easy_share}


class InterestTrackingLayer(nn.Module):
    r"""One ITL: every step's query ``ReLU(MLP(x_t))`` attends over the
    layer's inputs ``X`` (keys = values = ``X``) under ``mask``, then
    ``L = LayerNorm(L' + Dropout(FFN(L')))``."""

    def __init__(self, hidden_size, dropout_prob, layer_norm_eps):
        super().__init__()
        self.query = nn.Linear(hidden_size, hidden_size)
        self.ffn = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size)
        )
        self.dropout = nn.Dropout(dropout_prob)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, x, mask):
        """``x`` ``[B, T, d]``, ``mask`` ``[B, T, T]`` (True = may attend) -> ``[B, T, d]``."""
        query = F.relu(self.query(x))
        attended = F.scaled_dot_product_attention(query, x, x, attn_mask=mask)
        return self.layer_norm(attended + self.dropout(self.ffn(attended)))


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
        of cross-entropy, which Adam's scale invariance cancels. A larger
        ``tau`` (12-16) or ``learn_scale`` (``tau = exp(log_scale)``, learned,
        starting at ``scale``) is the next thing to validate; the trainer logs
        :meth:`epoch_statistics` (mean AW weight, share of samples with
        ``p > 0.5``) after every training epoch to show whether AW acts. With
        ``learn_scale``, ``weight_decay`` pulls ``log tau`` towards 0.

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
        self.embedding_size = config["embedding_size"]
        self.n_layers = config["n_layers"]
        self.dropout_prob = config["dropout_prob"]
        self.scale = float(config["scale"])
        self.learn_scale = config["learn_scale"]
        self.aw_gamma = float(config["aw_gamma"])
        self.layer_norm_eps = config["layer_norm_eps"]
        self.initializer_range = config["initializer_range"]

        # define layers and loss
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, self.embedding_size)
        self.itl_layers = nn.ModuleList(
            InterestTrackingLayer(self.embedding_size, self.dropout_prob, self.layer_norm_eps)
            for _ in range(self.n_layers)
        )
        self.iel_query = nn.Linear(self.embedding_size, self.embedding_size)
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
        ITLs. ``l_t`` depends only on the first ``t`` items; rows at padded
        positions are defined but meaningless."""
        seq_length = item_seq.size(1)
        positions = torch.arange(seq_length, device=item_seq.device)
        x = self.item_embedding(item_seq) + self.position_embedding(positions)
        causal = torch.ones(seq_length, seq_length, dtype=torch.bool, device=item_seq.device).tril()
        valid = self._valid_positions(item_seq, item_seq_len)
        mask = causal & valid.unsqueeze(1)  # [B, T, T]: query t sees the real keys j <= t
        for layer in self.itl_layers:
            x = layer(x, mask)
        return x

    def forward(self, item_seq, item_seq_len):
        """Session representation ``O`` ``[B, d]`` (before L2 normalisation).

        The positions after the batch's longest session (``max(ITEM_SEQ_LEN)``)
        are padding in every row; they are cut off first. That changes no
        output (``l_t`` is causal and padded keys are masked, so ``l_m`` and
        ``O`` are the same) but the cost: Tmall sessions average 6.7 of the 50
        positions."""
        item_seq = item_seq[:, : int(item_seq_len.max())]
        instant = self.interest_tracking(item_seq, item_seq_len)
        last = self.gather_indexes(instant, item_seq_len - 1)  # l_m, [B, d]
        query = F.relu(self.iel_query(last)).unsqueeze(1)  # [B, 1, d]
        valid = self._valid_positions(item_seq, item_seq_len).unsqueeze(1)  # [B, 1, T]
        output = F.scaled_dot_product_attention(query, instant, instant, attn_mask=valid)
        return output.squeeze(1)

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
