"""Runtime fixes that let RecBole 1.2.1 run on today's numpy and torch.

``apply()`` runs once when :mod:`recbole_selfattn` is imported, before any
RecBole code runs. Each fix is small, idempotent and has a test in
``tests/test_compat.py`` that fails without it:

* **numpy 2** removed ``np.float_``, ``np.complex_``, ``np.unicode_`` (used by
  RecBole's ``Config.compatibility_settings``) and ``np.bool8`` (used by
  ray 2.6, which RecBole's Ray Tune path imports). They come back as aliases
  of their numpy-2 names.
* **torch >= 2.6** loads with ``weights_only=True`` by default, which cannot
  read RecBole's checkpoints (they pickle the ``Config``), so
  ``Trainer.resume_checkpoint`` and ``Trainer.evaluate(load_best_model=True)``
  fail. RecBole's trainer module, which only reads checkpoints it wrote
  itself, gets a ``torch`` whose ``load`` keeps the pre-2.6 default; the rest
  of the process keeps torch's safe default.
* **setuptools >= 82** has no ``pkg_resources``, which ray 2.6 imports, and
  ``recbole.quick_start`` imports ray at module level. This package never
  imports ``recbole.quick_start``: it has its own pipeline and checkpoint
  loader (:mod:`recbole_selfattn.quick_start`).
* **RecBole's SINE module** calls ``torch.autograd.set_detect_anomaly(True)``
  when it is imported, and ``recbole.model.sequential_recommender`` imports
  it, so resolving any built-in sequential model turns anomaly detection on
  for the whole process: every backward op is then checked for NaN (a device
  sync per op on a GPU) and every forward op records a traceback. Anomaly
  detection is switched back off once SINE is loaded; a user who wants it
  turns it on after importing RecBole's models.

Handled by a pin instead (``pyproject.toml``): pandas 3, where ``fillna`` no
longer works in place and RecBole silently keeps NaN. Distributed training on
CPU (gloo) is :mod:`recbole_selfattn.distributed`, applied here too.
"""

import importlib
import types

import numpy as np
import torch

_NUMPY_ALIASES = {
    "float_": "float64",
    "complex_": "complex128",
    "unicode_": "str_",
    "bool8": "bool_",
}


def _restore_numpy_aliases():
    for old, new in _NUMPY_ALIASES.items():
        if old not in np.__dict__:
            setattr(np, old, getattr(np, new))


class _TorchForTrustedCheckpoints(types.ModuleType):
    """``torch`` as RecBole's trainer sees it: ``load`` unpickles the whole
    checkpoint (``weights_only=False``) unless the caller says otherwise."""

    def __init__(self):
        super().__init__("torch")

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def load(f, *args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return torch.load(f, *args, **kwargs)


def _trust_trainer_checkpoints():
    import recbole.trainer.trainer as trainer_module

    if not isinstance(trainer_module.torch, _TorchForTrustedCheckpoints):
        trainer_module.torch = _TorchForTrustedCheckpoints()


_SINE_MODULE = "recbole.model.sequential_recommender.sine"


def _undo_sine_anomaly_detection():
    importlib.import_module(_SINE_MODULE)
    torch.autograd.set_detect_anomaly(False)


def apply():
    from recbole_selfattn import distributed

    _restore_numpy_aliases()
    _trust_trainer_checkpoints()
    _undo_sine_anomaly_detection()
    distributed.apply()
