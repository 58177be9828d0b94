"""The matrix-product FLOPs of one training step of a model, for the
FLOP floor of ``benchmarks/speed.py`` (FLOPs / the measured fp32 matmul
rate): 2 FLOPs per multiply-add, backward = 2 x forward, so a step is 3 x the
forward count, counted on each batch. With ``B`` the batch, ``T``
its longest sequence (the models cut the padding after it), ``d`` the
embedding size, ``N`` the number of item ids (``n_items``, padding included):

* MTAW: ``3 B [n_layers (6 T d^2 + 4 T^2 d) + 2 d^2 + 4 T d + 2 (N - 1) d]``
  (per ITL: query and two FFN layers, ``Q K^T`` and ``A V`` over the causal
  ``T x T``; IEL: query and attention; scores against the ``N - 1`` real items);
* MIND: ``3 B [2 T d^2 + (2 r - 1) 2 T K d + 2 K d + m 2 K d^2 + 2 N d]``
  (``S c_i``; ``r`` routing iterations of ``z_j`` and ``r - 1`` logit updates
  over ``K`` interests; label-aware attention; ``m = 1`` with the interest MLP;
  CE scores against all ``N`` items, or ``4 d`` for BPR's two scores);
* AttRec: ``3 B [2 q L d^2 + 4 L^2 d + 2 T (1 + n) d (1 + [omega > 0])]``
  (``q`` = 1 shared or 2 separate Q/K projections over the window ``L``;
  attention; distances to ``T`` targets and ``n`` negatives each; with
  ``loss_type: ce`` the last term is ``2 N d (1 + [omega > 0])``, distances to
  every item);
* SASRec (the work of the fast path, ``recbole_selfattn/fastpath``, the
  smaller of the two): ``3 B [(n_layers - 1) (8 T d^2 + 4 T^2 d + 4 T d I)
  + 4 T d^2 + 4 d^2 + 4 T d + 4 d I + S]`` with ``I`` = ``inner_size``
  (full layers: Q/K/V/output projections, attention, feed-forward; the last
  layer: keys and values of every position, the rest at the read position
  only) and ``S`` = ``2 N d`` for CE, ``4 d`` for BPR;
* GRU4Rec: ``3 B [6 T (e h + h^2) + 6 T (n_layers - 1) 2 h^2 + 2 T h e + S]``
  (three gates per step and layer; RecBole's dense layer on every position);
* Caser: ``3 B [2 n_v L d + sum_{h=1..L} 2 n_h (L - h + 1) h d + 2 (n_v d + n_h L) d
  + 4 d^2 + S]`` with ``L`` = ``MAX_ITEM_LIST_LENGTH`` (Caser convolves every
  column, padding included): the vertical filters, the ``n_h`` horizontal
  filters of every height ``h``, ``fc1`` and ``fc2``.

The score product ``B x d x N`` dominates MTAW and MIND on large catalogues.
Element-wise work (softmax, normalisation, dropout) is not counted, so the
floor is a lower bound; ``measured / floor`` says how far above it a model is.
"""

import torch


def _longest(model, interaction):
    return int(interaction[model.ITEM_SEQ_LEN].max())


def step_flops(name, model, interaction):
    """Matrix-product FLOPs of one training step (3 x forward) on ``interaction``; see the
    module docstring. ``None`` for models without a count."""
    if name not in ("MTAW", "MIND", "AttRec", "SASRec", "GRU4Rec", "Caser"):
        return None
    batch = len(interaction)
    d = model.hidden_size if name == "SASRec" else model.embedding_size
    n = model.n_items
    if name == "MTAW":
        t = _longest(model, interaction)
        per_row = model.n_layers * (6 * t * d * d + 4 * t * t * d) + 2 * d * d + 4 * t * d + 2 * (n - 1) * d
    elif name == "MIND":
        t, k, r = _longest(model, interaction), model.interest_num, model.routing_iters
        mlp = 2 * k * d * d if isinstance(model.interest_layer, torch.nn.Sequential) else 0
        scores = 4 * d if model.loss_type == "BPR" else 2 * n * d
        per_row = 2 * t * d * d + (2 * r - 1) * 2 * t * k * d + 2 * k * d + mlp + scores
    elif name == "SASRec":
        t, inner = _longest(model, interaction), model.inner_size
        scores = 4 * d if model.loss_type == "BPR" else 2 * n * d
        per_row = (model.n_layers - 1) * (8 * t * d * d + 4 * t * t * d + 4 * t * d * inner)
        per_row += 4 * t * d * d + 4 * d * d + 4 * t * d + 4 * d * inner + scores
    elif name == "GRU4Rec":
        t, h = interaction[model.ITEM_SEQ].shape[1], model.hidden_size
        scores = 4 * d if model.loss_type == "BPR" else 2 * n * d
        per_row = 6 * t * (d * h + h * h) + 6 * t * (model.num_layers - 1) * 2 * h * h + 2 * t * h * d + scores
    elif name == "Caser":
        length, n_h, n_v = model.max_seq_length, model.n_h, model.n_v
        scores = 4 * d if model.loss_type == "BPR" else 2 * n * d
        horizontal = sum(2 * n_h * (length - h + 1) * h * d for h in range(1, length + 1))
        per_row = 2 * n_v * length * d + horizontal + 2 * (n_v * d + n_h * length) * d + 4 * d * d + scores
    else:
        projections = 1 if model.key_proj is model.query_proj else 2
        tables = 2 if model.omega > 0 else 1
        per_row = 2 * projections * model.L * d * d + 4 * model.L**2 * d
        if model.loss_type == "ce":  # one product with every item's rows per table
            per_row += 2 * n * d * tables
        else:
            per_row += 2 * model.T * (1 + model.neg_samples) * d * tables
    return 3 * batch * per_row
