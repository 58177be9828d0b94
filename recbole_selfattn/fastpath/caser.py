"""Caser's forward pass (Tang & Wang, WSDM 2018, as RecBole's ``Caser``) on the fast path.

RecBole convolves the ``[L, d]`` embedded sequence with one ``Conv2d`` per
horizontal filter height ``h = 1..L`` (kernel ``(h, d)``, ``n_h`` filters each),
a single input channel and a kernel as wide as the embedding. On the CPU those
``L`` small two-dimensional convolutions and their backward passes are most of
a training step. Here the same filters, read from the model's own ``conv_h``
weights (checkpoints are unchanged), run as a few one-dimensional convolutions
over the sequence with the ``d`` embedding columns as input channels:

* the heights are grouped :data:`HEIGHTS_PER_CONV` at a time; a group's filters
  are zero-padded at the bottom to its tallest height and the sequence is
  zero-padded after its end, so every filter is evaluated at each of its own
  ``L - h + 1`` positions (the positions a shorter filter reaches only through
  the zero padding are excluded from its max-pooling);
* max-pooling over positions comes before the bias and the ReLU: both are
  increasing and the bias is the same at every position, so
  ``max_t ReLU(c_t + b) = ReLU(max_t c_t + b)``;
* the backward pass is two forward convolutions (:class:`FilterGroup`), each
  with the batch in the channels, where those are faster than PyTorch's
  convolution backward;
* the vertical filters (kernel ``(L, 1)``) are one product ``W_v E``.

Fully-connected layers, dropout and the user embedding are RecBole's.
"""

import torch
import torch.nn.functional as F

from recbole_selfattn.fastpath.dropout import dropout

HEIGHTS_PER_CONV = 8
"""Filter heights per convolution. One training step of the horizontal
filters (forward and backward, ``L`` = 50, ``d`` = 64, ``n_h`` = 8, a batch of
2,048, 2-core AMD EPYC): RecBole's 50 ``Conv2d`` 8.5 s; one ``conv1d`` per
height 4.1 s; 5, 8, 10 and 17 heights per convolution 2.04, 1.86, 2.05 and
2.35 s (more heights pad more zeros, fewer launch more, smaller convolutions)."""


def height_groups(max_height):
    """The heights ``1..max_height`` in consecutive groups of :data:`HEIGHTS_PER_CONV`."""
    return [range(low, min(low + HEIGHTS_PER_CONV, max_height + 1))
            for low in range(1, max_height + 1, HEIGHTS_PER_CONV)]


class FilterGroup(torch.autograd.Function):
    """``conv1d(x, weight)`` (``x`` ``[B, d, L']``, ``weight`` ``[C, d, H]``, output
    ``[B, C, P]``, ``P = L' - H + 1``) with a backward of forward convolutions.

    The weight gradient ``sum_b,t g[b, c, t] x[b, :, t + k]`` is the
    convolution of ``x`` with ``g`` as the kernel, the batch as input channels.
    When a group has no more positions than taps (``P <= H``), the input
    gradient ``sum_c,k g[b, c, s - k] W[c, :, k]`` is the convolution of the
    zero-padded weights with the flipped ``g`` as the kernel, the batch as
    output channels; otherwise PyTorch's transposed convolution. Measured on
    the groups of ``L`` = 50 (``d`` = 64, ``n_h`` = 8, a batch of 2,048, 2-core
    AMD EPYC): weight gradients 0.43 s against PyTorch's 0.74 s; input
    gradients of the three tallest groups 0.15 s against 0.29 s, the flipped
    form being slower for the shorter groups (0.25 s against 0.04 s for
    heights 1-8)."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return F.conv1d(x, weight)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        positions, taps = grad.shape[2], weight.shape[2]
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            if positions <= taps:
                padded = F.pad(weight.transpose(0, 1), (positions - 1, positions - 1))
                grad_x = F.conv1d(padded, grad.flip(2)).transpose(0, 1)
            else:
                grad_x = F.conv_transpose1d(grad, weight)
        if ctx.needs_input_grad[1]:
            grad_weight = F.conv1d(x.transpose(0, 1), grad.transpose(0, 1)).transpose(0, 1)
        return grad_x, grad_weight


def _group_weight(convs, heights):
    """The ``[n_h * len(heights), d, tallest]`` conv1d weight of ``heights``' filters,
    each ``[n_h, 1, h, d]`` Conv2d weight zero-padded from ``h`` to the tallest height."""
    tallest = heights[-1]
    return torch.cat([F.pad(convs[h - 1].weight.squeeze(1).transpose(1, 2), (0, tallest - h)) for h in heights])


def _beyond_end(heights, length, n_filters, device):
    """``-inf`` where a filter of the group would overlap the padding after the sequence, else 0:
    ``[n_h * len(heights), L - lowest + 1]``, the group's output positions."""
    positions = torch.arange(length - heights[0] + 1, device=device)
    last_start = length - torch.tensor(list(heights), device=device).repeat_interleave(n_filters)
    return torch.zeros(len(last_start), len(positions), device=device).masked_fill_(
        positions > last_start[:, None], float("-inf"))


def horizontal(model, embedded):
    """The max-pooled ReLU outputs of every horizontal filter, ``[B, n_h * L]``, in
    RecBole's order (height-major); ``embedded`` is ``[B, L, d]``."""
    length = embedded.shape[1]
    columns = embedded.transpose(1, 2)  # [B, d, L]: embedding columns as channels
    pooled = []
    for heights in height_groups(length):
        padded = F.pad(columns, (0, heights[-1] - heights[0]))
        scores = FilterGroup.apply(padded, _group_weight(model.conv_h, heights))
        mask = _beyond_end(heights, length, model.n_h, embedded.device)
        pooled.append((scores + mask).amax(dim=2))
    bias = torch.cat([conv.bias for conv in model.conv_h])
    return torch.relu(torch.cat(pooled, dim=1) + bias)


def forward(model, user, item_seq):
    """``Caser.forward(user, item_seq)``: the ``[B, d]`` sequence representations."""
    embedded = model.item_embedding(item_seq)  # [B, L, d]
    vertical = torch.matmul(model.conv_v.weight.view(model.n_v, -1), embedded)  # [B, n_v, d]
    vertical = (vertical + model.conv_v.bias[:, None]).flatten(1)
    features = torch.cat([vertical, horizontal(model, embedded)], dim=1)
    features = dropout(features, model.dropout.p, model.training)
    z = model.ac_fc(model.fc1(features))
    return model.ac_fc(model.fc2(torch.cat([z, model.user_embedding(user).squeeze(1)], dim=1)))
