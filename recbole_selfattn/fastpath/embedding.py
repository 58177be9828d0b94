"""An embedding table whose backward adds the gradient rows with ``index_add_``.

``nn.Embedding``'s CPU backward (``embedding_dense_backward``) sorts the looked-up ids
before it sums their gradient rows. For the plugin models' lookups (AttRec's window,
targets and negatives: ``4096 x 56`` ids of 64 floats on the ml-1m benchmark) that took
24 ms per lookup on a 2-core Xeon, where ``index_add_`` of the same rows into a zero
table takes 10 ms. The forward is the same gather, the gradient the same sums (in
another order, so equal within float32 rounding), and the padding row gets none, as
with ``padding_idx``. State dicts and checkpoints are those of ``nn.Embedding``.
"""

import torch
from torch import nn


class _Lookup(torch.autograd.Function):
    """``weight[ids]``; the backward sums each id's gradient rows with ``index_add_``."""

    @staticmethod
    def forward(ctx, weight, ids, padding_idx):
        ctx.save_for_backward(ids)
        ctx.rows, ctx.padding_idx = weight.size(0), padding_idx
        return weight.index_select(0, ids.reshape(-1)).view(*ids.shape, weight.size(1))

    @staticmethod
    def backward(ctx, grad):
        (ids,) = ctx.saved_tensors
        width = grad.size(-1)
        grad_weight = grad.new_zeros(ctx.rows, width).index_add_(0, ids.reshape(-1), grad.reshape(-1, width))
        if ctx.padding_idx is not None:
            grad_weight[ctx.padding_idx] = 0
        return grad_weight, None, None


class Embedding(nn.Embedding):
    """``nn.Embedding`` (same arguments and state) with the backward of :class:`_Lookup`;
    ``max_norm``, ``scale_grad_by_freq`` and ``sparse`` fall back to ``nn.Embedding``."""

    def forward(self, ids):
        if self.max_norm is not None or self.scale_grad_by_freq or self.sparse:
            return super().forward(ids)
        return _Lookup.apply(self.weight, ids, self.padding_idx)
