"""A faster forward pass of RecBole's ``TransformerEncoder`` on its own parameters.

RecBole's ``MultiHeadAttention`` / ``FeedForward`` (``recbole.model.layers``)
compute ``softmax(Q K^T / sqrt(d_h) + mask) V`` with three projections,
separate scaling and masking passes and a hand-written GELU of five
element-wise passes. On the CPU these memory passes, not the matrix products,
set the speed. The functions here compute the same layers from the same
modules' weights (checkpoints are unchanged) with:

* one fused Q/K/V projection and ``1 / sqrt(d_h)`` folded into the queries;
* ``scaled_dot_product_attention`` when no attention dropout is applied
  (evaluation); in training, attention dropout with the cheaper mask of
  :mod:`recbole_selfattn.fastpath.dropout`;
* ``torch.nn.functional.gelu`` (the exact, erf form RecBole writes out) and
  ``silu`` for RecBole's ``swish``.

:func:`encode` takes RecBole's additive mask and returns every position, as
``TransformerEncoder.forward``; :func:`encode_last` is the causal form for a
model that reads one position per sequence (SASRec): it keeps only the
columns up to the longest sequence and, in the last layer, computes queries,
the output projection and the feed-forward layer for the read position only
(keys and values still cover every earlier position). Under a causal mask a
position never sees a later one, so this equals RecBole's result at the read
position.
"""

import torch
import torch.nn.functional as F

from recbole_selfattn.fastpath.dropout import dropout


def _activation(feed_forward):
    act = feed_forward.intermediate_act_fn
    name = getattr(getattr(act, "__func__", None), "__name__", None)
    return {"gelu": F.gelu, "swish": F.silu}.get(name, act)


def _heads(x, n_heads):
    batch, length, width = x.shape
    return x.view(batch, length, n_heads, width // n_heads).transpose(1, 2)


def _dropped_attention(q_heads, k_heads, v_heads, p, attn_mask, is_causal):
    """Attention with dropout on the probabilities, head by head: each head's
    ``[B, L, d_h]`` slice goes to ``bmm`` as it lies in memory (no copy into
    a ``[B, H, L, d_h]`` layout)."""
    if is_causal:
        rows, columns = q_heads[0].shape[1], k_heads[0].shape[1]
        hidden = torch.ones(rows, columns, dtype=torch.bool, device=q_heads[0].device).triu_(1)
    elif attn_mask.dtype == torch.bool:
        hidden = ~attn_mask.squeeze(1)
    contexts = []
    for q, k, v in zip(q_heads, k_heads, v_heads):
        scores = torch.bmm(q, k.transpose(1, 2))
        if is_causal or attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(hidden, float("-inf"))
        else:
            scores = scores + attn_mask.squeeze(1)
        contexts.append(torch.bmm(dropout(scores.softmax(dim=-1), p, True), v))
    return torch.cat(contexts, dim=-1)


def _attend(mha, query, keys, attn_mask, is_causal):
    """Multi-head attention of ``query`` rows over ``keys`` rows (both ``[B, *, d]``),
    then RecBole's output projection, dropout and residual layer norm."""
    n_heads, width = mha.num_attention_heads, query.shape[-1]
    head = width // n_heads
    weight = torch.cat([mha.query.weight / mha.sqrt_attention_head_size, mha.key.weight, mha.value.weight])
    bias = torch.cat([mha.query.bias / mha.sqrt_attention_head_size, mha.key.bias, mha.value.bias])
    p = mha.attn_dropout.p
    if mha.training and p > 0:
        # one piece per head of Q, K and V: split's backward is one concatenation
        if query is keys:
            pieces = F.linear(query, weight, bias).split(head, dim=-1)
            q_heads, kv_heads = pieces[:n_heads], pieces[n_heads:]
        else:
            q_heads = F.linear(query, weight[:width], bias[:width]).split(head, dim=-1)
            kv_heads = F.linear(keys, weight[width:], bias[width:]).split(head, dim=-1)
        context = _dropped_attention(q_heads, kv_heads[:n_heads], kv_heads[n_heads:], p, attn_mask, is_causal)
    else:
        if query is keys:
            q, k, v = F.linear(query, weight, bias).split(width, dim=-1)
        else:
            q = F.linear(query, weight[:width], bias[:width])
            k, v = F.linear(keys, weight[width:], bias[width:]).split(width, dim=-1)
        q, k, v = (_heads(t, n_heads) for t in (q, k, v))
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=1.0)
        context = context.transpose(1, 2).reshape(query.shape)
    hidden = dropout(mha.dense(context), mha.out_dropout.p, mha.training)
    return mha.LayerNorm(hidden + query)


def _feed_forward(ff, x):
    hidden = ff.dense_2(_activation(ff)(ff.dense_1(x)))
    return ff.LayerNorm(dropout(hidden, ff.dropout.p, ff.training) + x)


def _layer(layer, query, keys, attn_mask=None, is_causal=False):
    return _feed_forward(layer.feed_forward, _attend(layer.multi_head_attention, query, keys, attn_mask, is_causal))


def encode(encoder, hidden, attention_mask, output_all_encoded_layers=True):
    """``TransformerEncoder.forward`` of RecBole (``attention_mask``: its
    additive ``[B, 1, L, L]`` or ``[B, 1, 1, L]`` mask), computed as above."""
    outputs = []
    for layer in encoder.layer:
        hidden = _layer(layer, hidden, hidden, attn_mask=attention_mask)
        outputs.append(hidden)
    return outputs if output_all_encoded_layers else outputs[-1:]


def encode_last(encoder, hidden, positions):
    """The last layer's output at ``positions`` (``[B]``) of a causal encoder
    over right-padded ``hidden`` (``[B, L, d]``): RecBole's result of
    ``encoder(hidden, causal mask)[-1]`` gathered at ``positions``."""
    for layer in encoder.layer[:-1]:
        hidden = _layer(layer, hidden, hidden, is_causal=True)
    rows = torch.arange(len(hidden), device=hidden.device)
    query = hidden[rows, positions].unsqueeze(1)
    # the read position attends to itself and every earlier one
    visible = torch.arange(hidden.shape[1], device=hidden.device) <= positions.unsqueeze(1)
    last = _layer(encoder.layer[-1], query, hidden, attn_mask=visible[:, None, None, :])
    return last.squeeze(1)
