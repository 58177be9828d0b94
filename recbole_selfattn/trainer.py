"""RecBole's ``Trainer`` with what benchmarks and long runs need.

:class:`SequentialTrainer` trains exactly as RecBole's ``Trainer`` does and
adds:

* a finite-loss check on every batch: a NaN/inf loss stops training with
  :class:`~recbole_selfattn.errors.NonFiniteLossError` naming the epoch and
  batch (RecBole only notices at the end of an epoch, without saying where);
* ``epoch_seconds`` and ``valid_curve``: training seconds per epoch and the
  validation metric after each evaluation, for leaderboards and plots;
* a barrier before loading the best checkpoint in distributed runs: rank 0
  writes the file while other ranks would otherwise read it half-written;
* random-number state in every checkpoint (torch, numpy, Python and the
  training loader's shuffling generator), so a run resumed with
  ``checkpoint=<file>`` continues exactly as the uninterrupted run would have.
"""

import itertools
import random
import time

import numpy as np
import torch
from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_selfattn.errors import NonFiniteLossError


class SequentialTrainer(Trainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        self.epoch_seconds = []
        self.valid_curve = []
        self._train_data = None
        self._resumed_rng_state = None

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self._train_data = train_data
        if self._resumed_rng_state is not None:
            self._set_rng_state(self._resumed_rng_state)
            self._resumed_rng_state = None
        return super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)

    def _rng_state(self):
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": np.random.get_state(),
            "python": random.getstate(),
            "train_loader": self._train_data.generator.get_state() if self._train_data is not None else None,
        }

    def _set_rng_state(self, state):
        torch.set_rng_state(state["torch"])
        if state["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        np.random.set_state(state["numpy"])
        random.setstate(state["python"])
        if state["train_loader"] is not None:
            self._train_data.generator.set_state(state["train_loader"])

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            "config": self.config,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "rng_state": self._rng_state(),
        }
        torch.save(state, saved_model_file, pickle_protocol=4)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def resume_checkpoint(self, resume_file):
        super().resume_checkpoint(resume_file)
        checkpoint = torch.load(resume_file, map_location="cpu", weights_only=False)
        self._resumed_rng_state = checkpoint.get("rng_state")

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        loss_func = loss_func or self.model.calculate_loss
        batches = itertools.count()

        def checked_loss(interaction):
            losses = loss_func(interaction)
            batch_idx = next(batches)
            for loss in losses if isinstance(losses, tuple) else (losses,):
                if not torch.isfinite(loss).all():
                    raise NonFiniteLossError(epoch_idx, batch_idx, loss.detach().cpu().flatten()[0].item())
            return losses

        start = time.perf_counter()
        total_loss = super()._train_epoch(train_data, epoch_idx, checked_loss, show_progress)
        self.epoch_seconds.append(time.perf_counter() - start)
        return total_loss

    def _valid_epoch(self, valid_data, show_progress=False):
        valid_score, valid_result = super()._valid_epoch(valid_data, show_progress)
        self.valid_curve.append(float(valid_score))
        return valid_score, valid_result

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and not self.config["single_spec"]:
            torch.distributed.barrier()
        return super().evaluate(eval_data, load_best_model, model_file, show_progress)
