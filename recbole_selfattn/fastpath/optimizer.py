"""Fused Adam and AdamW on the fast path.

RecBole builds ``torch.optim.Adam(params, lr, weight_decay)``, whose default
(``foreach``) step makes several passes over every parameter, gradient and
moment. With ``fused=True`` torch updates each parameter in one pass: on a
2-core AMD EPYC, one step over a 40,727 x 100 item table (Tmall) takes 6.2 ms
against 15.6 ms, and the weights after 50 steps differ by at most 2.4e-7.
"""

import torch

FUSED = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def applies(fast_path, learner):
    """Whether a run with ``fast_path`` (the config value) and ``learner`` gets the fused optimiser."""
    return fast_path is not False and learner.lower() in FUSED


def build(params, learner, learning_rate, weight_decay):
    """The fused ``learner`` (``'adam'`` or ``'adamw'``, any case) over ``params``."""
    return FUSED[learner.lower()](params, lr=learning_rate, weight_decay=weight_decay or 0, fused=True)
