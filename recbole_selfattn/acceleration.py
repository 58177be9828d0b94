"""The trainer's speed options: mixed precision and ``torch.compile``.

Two config keys, both off by default (``properties/overall.yaml``), apply to
every model the plugin's trainer runs, plugin and RecBole built-in alike:

* ``mixed_precision``: ``none`` or ``bf16``. With ``bf16`` the model's calls
  in training and evaluation run under ``torch.autocast`` on the run's device
  type with ``bfloat16``: matrix products in bf16, reductions such as softmax
  and normalisation kept in float32 by autocast. The backward pass and the
  optimiser step stay outside autocast (weights and gradients stay float32);
  bf16 has float32's range, so no gradient scaling is needed.
* ``compile``: ``True`` compiles with ``torch.compile`` the model methods the
  trainer calls (``calculate_loss``, ``predict`` and, where the model defines
  it, ``full_sort_predict``). The module itself is not wrapped, so its
  ``state_dict`` and checkpoints are the same as without the option.
"""

import contextlib

import torch

# mixed_precision value -> autocast dtype (None: full precision)
MIXED_PRECISION = {"none": None, "bf16": torch.bfloat16}

# The model methods RecBole's trainer calls.
TRAINER_CALLS = ("calculate_loss", "predict", "full_sort_predict")


def autocast(device, mixed_precision):
    """A context running the model's calls in ``mixed_precision`` on ``device``
    (a ``torch.device``); does nothing for ``none``."""
    dtype = MIXED_PRECISION[mixed_precision or "none"]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def compile_trainer_calls(model):
    """Replace, on ``model`` itself, each method of :data:`TRAINER_CALLS` that
    its class defines by its ``torch.compile``-d version (compiled at its
    first call). A method left to RecBole's base class (which raises
    ``NotImplementedError``, e.g. ``full_sort_predict`` of a model without
    one) is left alone, so the trainer's fallback still sees the error."""
    from recbole.model.abstract_recommender import AbstractRecommender  # a model exists: no extra import cost

    for name in TRAINER_CALLS:
        if getattr(type(model), name) is not getattr(AbstractRecommender, name):
            setattr(model, name, torch.compile(getattr(model, name)))
    return model
