"""Checkpoint files that are safe to load and never half-written.

A checkpoint is a dict of plain data (str, int, float, bool, None, lists,
dicts) and tensors, so :func:`load` reads it with ``torch.load(...,
weights_only=True)``: a file crafted to run code when unpickled is refused
unread. What a checkpoint holds:

* RecBole's trainer fields (``epoch``, ``cur_step``, ``best_valid_score``,
  ``state_dict``, ``other_parameter``, ``optimizer``) and ``config``, the run's
  final config converted to plain data by :func:`plain` (``device`` becomes
  ``"cpu"``, enums their names);
* ``format``, marking the file as this package's checkpoint;
* what :class:`~recbole_selfattn.trainer.SequentialTrainer` adds (random
  state, validation curve, best epoch, token vocabulary).

:func:`save` writes through :func:`~recbole_selfattn.safe_write.atomic_open`
(a temporary file beside the target, synced, then renamed over it), so a
run killed mid-save leaves the previous complete checkpoint. :func:`load` turns every unreadable file into one
:class:`CheckpointError` paragraph; :func:`check_run_options` also checks,
before any data is loaded, that a ``checkpoint=`` file can continue this run
and that ``checkpoint_dir`` is a folder.
"""

import enum
import os

import numpy as np
import torch

from recbole_selfattn.errors import UsageError
from recbole_selfattn.safe_write import atomic_open

FORMAT = "recbole-selfattn checkpoint v1"


class CheckpointError(UsageError):
    """A checkpoint file is missing, unreadable, not this package's, or does
    not fit the run it is given to."""


def plain(value):
    """``value`` as plain data that ``weights_only`` loading accepts: enums
    become their names, ``torch.device`` and other objects their ``str``."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool, torch.Tensor)):
        return value
    return str(value)


def plain_config(config):
    """A RecBole ``Config`` (or a dict) as a plain dict."""
    return plain(dict(getattr(config, "final_config_dict", config)))


def save(state, path):
    """Write ``state`` to ``path`` whole or not at all: a reader (or a crash)
    sees the previous file or the complete new one, never a partial one."""
    with atomic_open(path, "wb") as f:
        torch.save({**state, "format": FORMAT}, f)


def load(path, map_location="cpu"):
    """Read a checkpoint written by :func:`save` with ``weights_only=True``.

    Raises:
        CheckpointError: the path is missing, a folder, empty, unreadable as
            weights-only data (damaged, truncated, or holding arbitrary Python
            objects), or a torch file that is not this package's checkpoint.
    """
    path = str(path)
    _check_is_a_file(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ... by cause
        raise CheckpointError(
            f"Checkpoint {path} could not be read safely ({_reason(e)}): it is damaged or truncated, "
            "or it is not a checkpoint written by recbole-selfattn (files that hold arbitrary Python "
            "objects are refused unread, so nothing in it ran). Give a .pth file saved by training "
            "(in checkpoint_dir), or train again."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a torch file but not a recbole-selfattn checkpoint (checkpoints of other tools, "
            "and of versions before the safe format, cannot be loaded): give a .pth file saved by "
            "training with this package, or train again."
        )
    return state


def _check_is_a_file(path):
    if not os.path.exists(path):
        raise CheckpointError(f"No checkpoint at {path}: train a model first (it saves to checkpoint_dir) and give that .pth file.")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder, not a checkpoint: give the .pth file inside checkpoint_dir.")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"Checkpoint {path} is empty (a save was interrupted or the file was truncated): give another .pth file, or train again.")


def _reason(error):
    """The informative line of torch's error (its weights-only errors open
    with a long generic preamble)."""
    text = str(error)
    text = text.split("WeightsUnpickler error:")[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[0] if lines else type(error).__name__
    return line if len(line) <= 150 else line[:147] + "..."


def other_parameter(model):
    """RecBole's ``model.other_parameter()`` as plain data. Sub-modules listed
    there (DIN's ``embedding_layer``) are left out: their weights are in the
    ``state_dict`` already, and their ``str`` could not be loaded back."""
    others = model.other_parameter() or {}
    return plain({key: value for key, value in others.items() if not isinstance(value, torch.nn.Module)})


def trainer_state(trainer, epoch):
    """What RecBole's ``Trainer._save_checkpoint`` stores, as plain data."""
    return {
        "config": plain_config(trainer.config),
        "epoch": epoch,
        "cur_step": trainer.cur_step,
        "best_valid_score": float(trainer.best_valid_score),
        "state_dict": trainer.model.state_dict(),
        "other_parameter": other_parameter(trainer.model),
        "optimizer": trainer.optimizer.state_dict(),
    }


def check_run_options(config):
    """Check ``checkpoint_dir`` and ``checkpoint`` before any data is loaded.

    ``checkpoint_dir`` must not be a file (training would fail at its first
    save); a ``checkpoint`` must be this package's checkpoint, of the same
    model and dataset, with ``epochs`` beyond the epochs it already holds.
    The token vocabulary is checked once the dataset is built
    (:meth:`~recbole_selfattn.trainer.SequentialTrainer.fit`)."""
    folder = config["checkpoint_dir"]
    if folder and os.path.exists(folder) and not os.path.isdir(folder):
        raise CheckpointError(
            f"checkpoint_dir={folder} is a file, not a folder: give a folder for the checkpoints "
            "(e.g. --checkpoint_dir=saved), or move the file away."
        )
    path = config["checkpoint"]
    if not path:
        return
    state = load(path)
    saved = state["config"]
    for key in ("model", "dataset"):
        if saved.get(key) != config[key]:
            raise CheckpointError(
                f"Checkpoint {path} was trained with {key}={saved.get(key)}, but this run has "
                f"{key}={config[key]}: resume with --{key}={saved.get(key)}, or drop --checkpoint to start afresh."
            )
    check_epochs(path, state, config["epochs"])


def check_epochs(path, state, epochs):
    """Refuse to resume ``state`` when ``epochs`` leaves nothing to train
    (RecBole would silently train nothing)."""
    done = state["epoch"] + 1
    if epochs <= done:
        raise CheckpointError(
            f"Checkpoint {path} already holds {done} trained epoch(s) (it was saved at epoch {state['epoch']}, "
            f"counted from 0), so epochs={epochs} leaves nothing to train: epochs counts the checkpoint's "
            f"epochs too, give more than {done} (e.g. --epochs={done + epochs})."
        )
