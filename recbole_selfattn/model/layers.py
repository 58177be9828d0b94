"""MTAW's building blocks: the adaptive-weight loss and the Interest Tracking
Layer (``docs/models.md``, "MTAW"; the model is :mod:`recbole_selfattn.model.mtaw`)."""

import torch
import torch.nn.functional as F
from torch import nn

from recbole_selfattn.fastpath.dropout import Dropout


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


def key_value_maps(hidden_size, projected):
    """The key and value maps of an attention: linear layers, or the identity (the paper)."""
    if projected:
        return nn.Linear(hidden_size, hidden_size), nn.Linear(hidden_size, hidden_size)
    return nn.Identity(), nn.Identity()


class InterestTrackingLayer(nn.Module):
    r"""One ITL: every step's query ``ReLU(MLP(x_t))`` attends over the
    layer's inputs ``X`` (keys = values = ``X``, or their linear maps with
    ``kv_projection``) at its own and earlier steps (a causal mask), then
    ``L = LayerNorm(L' + Dropout(FFN(L')))`` (``residual`` says which tensor the
    residual adds; see the module docstring).

    The mask is causal only: over right-padded sequences a real step ``t``
    sees only real steps ``j <= t``, so the padding needs no mask of its own
    (padded steps' rows are meaningless and never reach a real one). The
    causal form runs PyTorch's fused attention kernel, no ``[B, T, T]`` mask
    is built, and the FFN's dropout draws the cheaper mask of
    :class:`~recbole_selfattn.fastpath.dropout.Dropout`."""

    def __init__(self, hidden_size, dropout_prob, layer_norm_eps, residual="ffn", kv_projection=False):
        super().__init__()
        self.residual = residual
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key, self.value = key_value_maps(hidden_size, kv_projection)
        self.ffn = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size)
        )
        self.dropout = Dropout(dropout_prob)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        if residual == "both":
            self.attention_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, x):
        """``x`` ``[B, T, d]`` -> ``[B, T, d]``; step ``t`` of the output depends on steps ``<= t``."""
        query = F.relu(self.query(x))
        # one head, [B, 1, T, d]: the fused kernel takes 4-d inputs only
        heads = (t.unsqueeze(1) for t in (query, self.key(x), self.value(x)))
        attended = F.scaled_dot_product_attention(*heads, is_causal=True).squeeze(1)
        if self.residual == "both":
            attended = self.attention_norm(x + attended)
        shortcut = x if self.residual == "input" else attended
        return self.layer_norm(shortcut + self.dropout(self.ffn(attended)))
