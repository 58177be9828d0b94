"""An embedding table whose backward adds the gradient rows with ``index_add_``, and
the dot products of looked-up rows with one vector per row of ids.

``nn.Embedding``'s CPU backward (``embedding_dense_backward``) sorts the looked-up ids
before it sums their gradient rows. For the plugin models' lookups (AttRec's window,
targets and negatives: ``4096 x 56`` ids of 64 floats on the ml-1m benchmark) that took
24 ms per lookup on a 2-core Xeon, where ``index_add_`` of the same rows into a zero
table takes 10 ms. The forward is the same gather, the gradient the same sums (in
another order, so equal within float32 rounding), and the padding row gets none, as
with ``padding_idx``. State dicts and checkpoints are those of ``nn.Embedding``.

:meth:`Embedding.dots` scores ``n`` ids per vector (AttRec's targets and negatives),
``weight[ids] @ vector``, as a batch of ``[1, d] x [d, n]`` products, with a backward
that neither keeps nor rebuilds the ``[B, n, d]`` rows: the vectors' gradient is an
``embedding_bag`` of the rows weighted by the incoming gradient, the table's one of the
vectors, its ids sorted into one bag per row. On the ml-1m benchmark (``4096 x 51`` ids,
``d`` 64, one thread of a 2-core AMD EPYC) the lookup and product take 5.9 ms forward
and 6.7 ms backward, where autograd through the looked-up rows and
``bmm(rows, vector)`` takes 15.2 and 42.1 ms.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable


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


class _RowDots(torch.autograd.Function):
    """``s[b, k] = weight[ids[b, k]] . vectors[b]`` for ``ids`` ``[B, n]`` and ``vectors`` ``[B, d]``."""

    @staticmethod
    def forward(ctx, weight, ids, vectors, padding_idx):
        ctx.save_for_backward(weight, ids, vectors)
        ctx.padding_idx = padding_idx
        rows = weight.index_select(0, ids.reshape(-1)).view(*ids.shape, weight.size(1))
        return torch.bmm(vectors.unsqueeze(1).to(rows.dtype), rows.transpose(1, 2)).squeeze(1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        weight, ids, vectors = ctx.saved_tensors
        grad = grad.to(weight.dtype)  # bf16 under autocast
        grad_weight = grad_vectors = None
        if ctx.needs_input_grad[0]:
            # row i of the table gets sum of s'[b, k] vectors[b] over ids[b, k] = i: the ids
            # sorted into one bag per row, an embedding_bag of the vectors weighted by s'
            flat = ids.reshape(-1)
            order = flat.argsort()
            counts = torch.bincount(flat, minlength=weight.size(0))
            grad_weight = F.embedding_bag(order // ids.size(1), vectors.to(weight.dtype), counts.cumsum(0) - counts,
                                          mode="sum", per_sample_weights=grad.reshape(-1)[order])
            if ctx.padding_idx is not None:
                grad_weight[ctx.padding_idx] = 0
        if ctx.needs_input_grad[2]:  # sum_k s'[b, k] weight[ids[b, k]]
            grad_vectors = F.embedding_bag(ids, weight, per_sample_weights=grad, mode="sum").to(vectors.dtype)
        return grad_weight, None, grad_vectors, None


def lookup(weight, ids, padding_idx=None):
    """``F.embedding(ids, weight, padding_idx)`` with the backward of :class:`_Lookup`, for a
    table computed in the forward pass (MIND's mapped item table)."""
    return _Lookup.apply(weight, ids, padding_idx)


class Embedding(nn.Embedding):
    """``nn.Embedding`` (same arguments and state) with the backward of :class:`_Lookup`;
    ``max_norm``, ``scale_grad_by_freq`` and ``sparse`` fall back to ``nn.Embedding``."""

    def forward(self, ids):
        if self._plain():
            return super().forward(ids)
        return lookup(self.weight, ids, self.padding_idx)

    def dots(self, ids, vectors):
        """``[B, n]`` dot products of the rows of ``ids`` ``[B, n]`` with ``vectors`` ``[B, d]``,
        ``(self(ids) * vectors.unsqueeze(1)).sum(-1)`` within float32 rounding."""
        if self._plain():
            return torch.bmm(self(ids), vectors.unsqueeze(-1)).squeeze(-1)
        return _RowDots.apply(self.weight, ids, vectors, self.padding_idx)

    def _plain(self):
        return self.max_norm is not None or self.scale_grad_by_freq or self.sparse
