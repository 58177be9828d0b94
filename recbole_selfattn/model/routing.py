r"""
B2I dynamic routing
################################################

Reference:
    Chao Li et al. "Multi-Interest Network with Dynamic Routing for Recommendation at Tmall." in CIKM 2019
    (Algorithm 1); the stop-gradient of the early iterations follows Yukuo Cen et al. "Controllable
    Multi-Interest Framework for Recommendation" (ComiRec), in KDD 2020.

Behaviour capsules ``S c_i`` are grouped into interest capsules by iterating

.. math::
    w_{ij} = \mathrm{softmax}_j(b_{ij}), \quad z_j = \sum_i w_{ij} S c_i, \quad
    u_j = \mathrm{squash}(z_j), \quad b_{ij} \leftarrow b_{ij} + \alpha\, u_j^\top S c_i

where :math:`\alpha` (``update_scale``) is 1 in the paper. The module holds no state:
the caller draws the initial logits ``b_ij`` and owns the bilinear map ``S``.
"""

import torch


def squash(z):
    r"""``||z||^2 / (1 + ||z||^2) * z / ||z||`` over the last dimension.

    ``||z||`` is computed as ``sqrt(||z||^2 + 1e-9)`` (as ComiRec does), so an all-zero
    ``z`` maps to zero with a finite gradient."""
    squared_norm = z.pow(2).sum(dim=-1, keepdim=True)
    return squared_norm / (1 + squared_norm) / torch.sqrt(squared_norm + 1e-9) * z


def initial_logits(batch_size, positions, interest_num, sigma, device, seed=None):
    r"""Initial routing logits ``b_ij ~ N(0, sigma^2)``, ``[B, positions, K]``.

    Without ``seed`` they are fresh draws from torch's global RNG for every sequence (the
    paper). With ``seed``, every sequence gets the same draw from a CPU generator seeded with
    it (every device gets the same logits), and the global RNG is left untouched.

    Callers draw them for a fixed number of positions (``MAX_ITEM_LIST_LENGTH``) whatever the
    batch's padded length and cut them (torch's generators do not give a longer draw the
    same prefix), so a sequence's logits do not depend on how much padding follows it."""
    if seed is None:
        logits = torch.randn(batch_size, positions, interest_num, device=device)
    else:
        fixed = torch.randn(positions, interest_num, generator=torch.Generator().manual_seed(seed))
        logits = fixed.to(device).expand(batch_size, -1, -1)
    return logits * sigma


def b2i_routing(
    low_capsules, logits, item_mask, interest_mask, iterations, over_items=False, update_scale=1.0, stop_grad=True
):
    r"""Route behaviour capsules into interest capsules (Algorithm 1).

    Args:
        low_capsules (torch.Tensor): the mapped behaviour capsules ``S c_i``, ``[B, L, d]``.
        logits (torch.Tensor): the initial routing logits ``b_ij``, ``[B, L, K]``.
        item_mask (torch.BoolTensor): real (non-padded) items, ``[B, L]``.
        interest_mask (torch.BoolTensor): valid interests, ``[B, K]``.
        iterations (int): the number of routing iterations ``r``, >= 1.
        over_items (bool): normalise ``w_ij`` over the real items of each interest instead
            of over the valid interests of each item (the paper).
        update_scale (float): the factor :math:`\alpha` of the logit update.
        stop_grad (bool): update the logits without gradient, so gradients reach
            ``low_capsules`` through the last iteration's :math:`z_j = \sum_i w_{ij} S c_i`
            only (ComiRec); False also differentiates through the earlier iterations'
            updates of :math:`w_{ij}`.

    Returns:
        tuple: the interest capsules ``u_j`` ``[B, K, d]`` and the last iteration's routing
        weights ``w_ij`` ``[B, L, K]`` (0 for padded items, and for invalid interests when
        normalised over interests).
    """
    # the iterations run on [B, K, L] logits: a softmax over K = 2..8 interests as the last
    # dimension costs ~30x the same softmax over the middle dimension on the CPU
    logits = logits.transpose(1, 2).contiguous()
    if over_items:
        pad, softmax_dim = ~item_mask.unsqueeze(1), 2  # normalise over the real items of each interest
    else:
        pad, softmax_dim = ~interest_mask.unsqueeze(2), 1  # over the valid interests of each item
    item_weight = item_mask.unsqueeze(1).to(low_capsules.dtype)
    for iteration in range(iterations):
        weights = logits.masked_fill(pad, torch.finfo(logits.dtype).min).softmax(dim=softmax_dim)
        weights = weights * item_weight  # [B, K, L]; padded items add nothing
        interests = squash(torch.bmm(weights, low_capsules))
        if iteration < iterations - 1:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not stop_grad):
                logits = logits + update_scale * torch.bmm(interests, low_capsules.transpose(1, 2))
    return interests, weights.transpose(1, 2)
