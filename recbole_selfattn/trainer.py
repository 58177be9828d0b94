"""RecBole's ``Trainer`` with what benchmarks and long runs need.

:class:`SequentialTrainer` trains exactly as RecBole's ``Trainer`` does and
adds:

* a finite-loss check on every batch: a NaN/inf loss stops training with
  :class:`~recbole_selfattn.errors.NonFiniteLossError` naming the epoch and
  batch (RecBole only notices at the end of an epoch, without saying where);
* ``epoch_seconds`` and ``valid_curve``: training seconds per epoch and the
  validation metric after each evaluation, for leaderboards and plots;
* a barrier before loading the best checkpoint in distributed runs: rank 0
  writes the file while other ranks would otherwise read it half-written.
"""

import itertools
import time

import torch
from recbole.trainer import Trainer

from recbole_selfattn.errors import NonFiniteLossError


class SequentialTrainer(Trainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        self.epoch_seconds = []
        self.valid_curve = []

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
