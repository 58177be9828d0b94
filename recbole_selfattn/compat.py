"""Runtime fixes that let RecBole 1.2.1 run on today's numpy and torch.

``apply()`` runs once when :mod:`recbole_selfattn` is imported, before any
RecBole code runs. Each fix is small, idempotent and has a test in
``tests/test_compat.py`` that fails without it:

* **numpy 2** removed ``np.float_``, ``np.complex_``, ``np.unicode_`` (used by
  RecBole's ``Config.compatibility_settings``) and ``np.bool8`` (used by
  ray 2.6, which RecBole's Ray Tune path imports). They come back as aliases
  of their numpy-2 names.
* **Checkpoints** pickle RecBole's ``Config``, so they can only be read with
  ``weights_only=False``, which runs whatever code a crafted file holds (and
  torch >= 2.6 refuses them by default). RecBole's ``Trainer`` saves plain
  data instead, atomically (:mod:`recbole_selfattn.checkpoint`), and its
  trainer module gets a ``torch`` whose ``load`` is
  :func:`recbole_selfattn.checkpoint.load`: weights only on any torch, and a
  one-paragraph error for a file that is not such a checkpoint.
* **Run names** (RecBole's ``get_local_time``, in checkpoint and log file
  names) change once a second, so two runs started in the same second share
  a log file. Log files get :func:`unique_local_time` (time, process id,
  counter, random suffix); so do the plugin trainer's checkpoints.
* **Folders** are made by RecBole's ``ensure_dir``, which checks and then
  creates: two processes starting together (benchmark ``--jobs``, DDP ranks)
  race, and the loser dies with ``FileExistsError`` on ``log/`` or
  ``saved/``. Every RecBole module that uses it gets :func:`ensure_dir`,
  which cannot lose that race.
* **setuptools >= 82** has no ``pkg_resources``, which ray 2.6 imports, and
  ``recbole.quick_start`` imports ray at module level: see
  :mod:`recbole_selfattn.dropin`, which also makes RecBole's own entry points
  run the plugin's models.
* **RecBole's SINE module** calls ``torch.autograd.set_detect_anomaly(True)``
  when it is imported, and ``recbole.model.sequential_recommender`` imports
  it, so resolving any built-in sequential model turns anomaly detection on
  for the whole process: every backward op is then checked for NaN (a device
  sync per op on a GPU) and every forward op records a traceback. Anomaly
  detection is switched back off as soon as SINE is loaded (an import hook:
  importing the plugin imports no model); a user who wants it turns it on
  after importing RecBole's models.

Handled by a pin instead (``pyproject.toml``): pandas 3, where ``fillna`` no
longer works in place and RecBole silently keeps NaN. Distributed training on
CPU (gloo) is :mod:`recbole_selfattn.distributed`, applied here too.
"""

import importlib
import importlib.abc
import importlib.util
import itertools
import os
import secrets
import sys
import types

import numpy as np
import torch
from recbole.utils import get_local_time, set_color

from recbole_selfattn import checkpoint

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


class TorchWithSafeCheckpoints(types.ModuleType):
    """``torch`` as RecBole's trainer module (and, see
    :mod:`recbole_selfattn.dropin`, its models that load pretrained files)
    sees it: ``load`` is
    :func:`recbole_selfattn.checkpoint.load` (weights only, whatever the
    caller asks)."""

    def __init__(self):
        super().__init__("torch")

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def load(f, map_location=None, **kwargs):
        return checkpoint.load(f, map_location=map_location)


def safe_checkpoint_loading(module):
    """Give ``module`` (one of RecBole's) a ``torch`` whose ``load`` is weights-only."""
    if not isinstance(module.torch, TorchWithSafeCheckpoints):
        module.torch = TorchWithSafeCheckpoints()


def _save_plain_checkpoint(trainer, epoch, verbose=True, **kwargs):
    """RecBole's ``Trainer._save_checkpoint``, storing plain data atomically:
    :func:`recbole_selfattn.checkpoint.trainer_state`, or the trainer's own
    ``checkpoint_state(epoch)`` where it has one (the plugin's
    :class:`~recbole_selfattn.trainer.SequentialTrainer` adds random state,
    vocabulary and its validation record)."""
    if not trainer.config["single_spec"] and trainer.config["local_rank"] != 0:
        return
    saved_model_file = kwargs.pop("saved_model_file", trainer.saved_model_file)
    state_of = getattr(trainer, "checkpoint_state", None)
    state = state_of(epoch) if state_of else checkpoint.trainer_state(trainer, epoch)
    checkpoint.save(state, saved_model_file)
    if verbose:
        trainer.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")


def _safe_trainer_checkpoints():
    import recbole.trainer.trainer as trainer_module

    trainer_module.Trainer._save_checkpoint = _save_plain_checkpoint
    safe_checkpoint_loading(trainer_module)


_RUN_NUMBERS = itertools.count(1)


def unique_local_time():
    """RecBole's ``get_local_time()`` plus what tells apart runs started in
    the same second: process id, a counter within the process, and a random
    suffix (processes on different hosts sharing a folder)."""
    return f"{get_local_time()}-{os.getpid()}.{next(_RUN_NUMBERS)}-{secrets.token_hex(2)}"


def _unique_log_names():
    import recbole.utils.logger as logger_module

    logger_module.get_local_time = unique_local_time


# RecBole's modules that bind ``ensure_dir`` by name.
_ENSURE_DIR_USERS = (
    "recbole.utils",
    "recbole.utils.utils",
    "recbole.utils.logger",
    "recbole.trainer.trainer",
    "recbole.data.utils",
    "recbole.data.dataset.dataset",
)


def ensure_dir(dir_path):
    """RecBole's ``ensure_dir`` without its check-then-create race."""
    os.makedirs(dir_path, exist_ok=True)


def _race_free_folders():
    for name in _ENSURE_DIR_USERS:
        importlib.import_module(name).ensure_dir = ensure_dir


_SINE_MODULE = "recbole.model.sequential_recommender.sine"


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``then()`` right after the module ``name`` is first executed, so
    that a fix to what importing it does costs nothing until it is imported
    (``recbole_selfattn`` imports no RecBole model by itself)."""

    def __init__(self, name, then):
        self.name = name
        self.then = then

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        exec_module = spec.loader.exec_module

        def exec_then(module):
            exec_module(module)
            self.then()

        spec.loader.exec_module = exec_then
        return spec


def _disable_anomaly_detection():
    torch.autograd.set_detect_anomaly(False)


def after_import(name, then):
    """Call ``then()`` once module ``name`` is imported: now if it already is,
    else right after its first import (no import cost until then)."""
    if name in sys.modules:
        then()
    elif not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, then))


def _undo_sine_anomaly_detection():
    after_import(_SINE_MODULE, _disable_anomaly_detection)


def apply():
    from recbole_selfattn import distributed

    _restore_numpy_aliases()
    _safe_trainer_checkpoints()
    _unique_log_names()
    _race_free_folders()
    _undo_sine_anomaly_detection()
    distributed.apply()
