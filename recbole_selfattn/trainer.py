"""RecBole's ``Trainer`` with what benchmarks and long runs need.

:class:`SequentialTrainer` trains exactly as RecBole's ``Trainer`` does and
adds:

* a finite-loss check on every batch: a NaN/inf loss stops training with
  :class:`~recbole_selfattn.errors.NonFiniteLossError` naming the epoch and
  batch (RecBole only notices at the end of an epoch, without saying where);
* ``epoch_seconds``, ``valid_curve`` and ``best_epoch``: training seconds per
  epoch, the validation metric after each evaluation, and the number of
  epochs behind the best checkpoint, for leaderboards and plots;
* ``epoch_statistics``: what the model reports after each training epoch
  through an ``epoch_statistics()`` method returning a dict (``{}`` for a
  model without one), also appended to the epoch's train-loss log line;
* safe checkpoints (:mod:`recbole_selfattn.checkpoint`): plain data loaded
  with ``weights_only=True``, written atomically, named uniquely per run
  (two runs started in the same second do not share a file);
* everything a resumed run (``checkpoint=<file>``) needs to continue exactly
  as the uninterrupted run would have: random-number state (torch, numpy,
  Python and the training loader's shuffling generator), the validation
  curve, best epoch and best validation result so far, and the token
  vocabulary, which must match the data the run resumes on;
* a barrier before loading the best checkpoint in distributed runs: rank 0
  writes the file while other ranks would otherwise read it half-written;
* ``elapsed_seconds``: training plus validation seconds from the start of
  training to the end of each epoch (time to the best validation score, total
  training time), counted across resumes;
* ``per_user_result``: the last full-sort test evaluation's NDCG@k per
  evaluated user (``{"users": [token, ...], "ndcg@10": [value, ...], ...}``),
  for paired significance tests between models; validation does not pay for it;
* ``epoch_checkpoint=<file>`` (config key, for runs built in slices): after
  every epoch the whole state (model, optimizer, random state, early-stopping
  state, timings and the best checkpoint's name) is written atomically to that
  file; when the file exists as training starts, training continues from it
  and ends exactly as the uninterrupted run would have.
* the speed options ``mixed_precision`` and ``compile``
  (:mod:`recbole_selfattn.acceleration`), off by default;
* on the fast path (``fast_path``, on by default), Adam and AdamW fused into
  one pass per parameter (:mod:`recbole_selfattn.fastpath.optimizer`).
"""

import itertools
import os
import random
import time

import numpy as np
import torch
from recbole.evaluator.metrics import NDCG
from recbole.trainer import Trainer
from recbole.utils import early_stopping, set_color

from recbole_selfattn import acceleration, checkpoint
from recbole_selfattn.checkpoint import CheckpointError
from recbole_selfattn.compat import unique_local_time
from recbole_selfattn.errors import NonFiniteLossError
from recbole_selfattn.fastpath import optimizer as fused_optimizer


def token_vocabulary(dataset):
    """The user and item tokens of ``dataset`` in id order (id 0 is padding)."""
    fields = (dataset.uid_field, dataset.iid_field)
    return {field: [str(t) for t in dataset.field2id_token[field]] for field in fields if field}


class SequentialTrainer(Trainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        self.mixed_precision = config["mixed_precision"]
        if config["compile"]:
            acceleration.compile_trainer_calls(model)
        self.saved_model_file = self._unique_model_file()
        self.epoch_seconds = []
        self.valid_curve = []
        self.epoch_statistics = []
        self.best_epoch = None
        self._epoch_idx = None
        self._train_data = None
        self._vocabulary = None
        self._resumed = None  # the checkpoint read by resume_checkpoint, until fit has checked it
        self.epoch_checkpoint = config["epoch_checkpoint"]
        self.elapsed_seconds = []
        self.per_user_result = None
        self._per_user_batches = []
        self._validating = False  # per-user metrics are kept outside validation only
        self._evaluates = False
        self._clock = time.perf_counter()  # restarted by fit, minus the resumed elapsed time

    def _build_optimizer(self, **kwargs):
        learner = kwargs.get("learner", self.learner)
        if not fused_optimizer.applies(self.config["fast_path"], learner):
            return super()._build_optimizer(**kwargs)
        return fused_optimizer.build(
            kwargs.get("params", self.model.parameters()), learner,
            kwargs.get("learning_rate", self.learning_rate), kwargs.get("weight_decay", self.weight_decay),
        )

    def _unique_model_file(self):
        """``<Model>-<time>-<pid>.<n>-<random>.pth``; in a distributed run
        every rank takes rank 0's name, the file rank 0 writes."""
        name = f"{self.config['model']}-{unique_local_time()}.pth"
        if not self.config["single_spec"]:
            names = [name]
            torch.distributed.broadcast_object_list(names, src=0)
            name = names[0]
        return os.path.join(self.checkpoint_dir, name)

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self._train_data = train_data
        self._vocabulary = token_vocabulary(train_data._dataset)
        self._evaluates = bool(valid_data) and self.eval_step > 0
        finished = self._resume_epoch_checkpoint()
        if self._resumed is not None:
            self._check_vocabulary(self._resumed.get("vocab"))
            if self._resumed.get("rng_state") is not None:
                self._set_rng_state(self._resumed["rng_state"])
            self._resumed = None
        if finished and self._evaluates:
            # RecBole's fit would overwrite the best checkpoint with the last weights.
            return self.best_valid_score, self.best_valid_result
        self._clock = time.perf_counter() - (self.elapsed_seconds[-1] if self.elapsed_seconds else 0.0)

        def end_of_evaluated_epoch(epoch_idx, valid_score):
            self._end_epoch(epoch_idx)
            if callback_fn:
                callback_fn(epoch_idx, valid_score)

        return super().fit(train_data, valid_data, verbose, saved, show_progress, end_of_evaluated_epoch)

    def _resume_epoch_checkpoint(self):
        """Continue from ``epoch_checkpoint`` when it exists; ``True`` when the
        run it holds had already finished training (early stop or last epoch)."""
        if not self.epoch_checkpoint or not os.path.isfile(self.epoch_checkpoint):
            return False
        state = checkpoint.load(self.epoch_checkpoint, map_location=self.device)
        self._restore(self.epoch_checkpoint, state)
        self.saved_model_file = os.path.join(self.checkpoint_dir, state["model_file"])
        self.epoch_seconds = list(state["epoch_seconds"])
        self.elapsed_seconds = list(state["elapsed_seconds"])
        self.logger.info(f"Resumed from {self.epoch_checkpoint}: training continues from epoch {self.start_epoch}")
        return state["stopped"] or self.start_epoch >= self.epochs

    def _end_epoch(self, epoch_idx):
        """Record the epoch's end time and, with ``epoch_checkpoint``, save
        everything needed to continue after this epoch."""
        self.elapsed_seconds.append(time.perf_counter() - self._clock)
        if not self.epoch_checkpoint or not (self.config["single_spec"] or self.config["local_rank"] == 0):
            return
        state = {
            **self.checkpoint_state(epoch_idx),
            "model_file": os.path.basename(self.saved_model_file),
            "epoch_seconds": list(self.epoch_seconds),
            "elapsed_seconds": list(self.elapsed_seconds),
            "stopped": self._evaluates and self.cur_step > self.stopping_step,
        }
        checkpoint.save(state, self.epoch_checkpoint)

    def _check_vocabulary(self, saved):
        changed = [field for field, tokens in (saved or {}).items() if self._vocabulary.get(field) != tokens]
        if changed:
            fields = " and ".join(changed)
            raise CheckpointError(
                f"Checkpoint {self.saved_model_file} was trained on other {fields} tokens than this dataset "
                f"has (or on the same tokens in another order), so its ids would stand for other {fields} "
                "values: resume on the data it was trained on, or drop --checkpoint to start afresh."
            )

    def _rng_state(self):
        kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached_gaussian)],
            "python": random.getstate(),
            "train_loader": self._train_data.generator.get_state() if self._train_data is not None else None,
        }

    def _set_rng_state(self, state):
        torch.set_rng_state(state["torch"])
        if state["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        kind, keys, pos, has_gauss, cached_gaussian = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gaussian))
        random.setstate(state["python"])
        if state["train_loader"] is not None:
            self._train_data.generator.set_state(state["train_loader"])

    def checkpoint_state(self, epoch):
        """What a checkpoint of this run holds (RecBole's ``_save_checkpoint``,
        as :mod:`recbole_selfattn.compat` makes it, writes it atomically)."""
        return {
            **checkpoint.trainer_state(self, epoch),
            "best_valid_result": checkpoint.plain(self.best_valid_result),
            "best_epoch": self.best_epoch,
            "valid_curve": list(self.valid_curve),
            "vocab": self._vocabulary,
            "rng_state": self._rng_state(),
        }

    def resume_checkpoint(self, resume_file):
        """Continue the run saved in ``resume_file``; later saves replace that
        file, atomically. The token vocabulary and random state are applied
        by :meth:`fit`, which sees the training data."""
        resume_file = str(resume_file)
        state = checkpoint.load(resume_file, map_location=self.device)
        checkpoint.check_epochs(resume_file, state, self.epochs)
        self.saved_model_file = resume_file
        self._restore(resume_file, state)
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def _restore(self, resume_file, state):
        """Weights, optimizer and early-stopping state of a checkpoint; the
        random state and vocabulary wait for :meth:`fit`."""
        self.start_epoch = state["epoch"] + 1
        self.cur_step = state["cur_step"]
        self.best_valid_score = state["best_valid_score"]
        self.best_valid_result = state.get("best_valid_result")
        self.best_epoch = state.get("best_epoch")
        self.valid_curve = list(state.get("valid_curve", []))
        self._load_weights(resume_file, state)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as e:
            raise CheckpointError(
                f"Checkpoint {resume_file}'s optimizer state does not fit this run's optimizer ({e}): "
                "resume with the learner it was trained with."
            ) from None
        self._resumed = state

    def _load_weights(self, checkpoint_file, state):
        try:
            self.model.load_state_dict(state["state_dict"])
        except RuntimeError as e:
            detail = " ".join(str(e).split())
            raise CheckpointError(
                f"Checkpoint {checkpoint_file} does not fit this {self.config['model']} model "
                f"({detail[:300]}): resume with the dataset and the model settings (e.g. embedding_size) "
                "it was trained with, or drop --checkpoint to start afresh."
            ) from None
        self.model.load_other_parameter(state.get("other_parameter"))

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        loss_func = loss_func or self.model.calculate_loss
        batches = itertools.count()

        def checked_loss(interaction):
            with self._autocast():
                losses = loss_func(interaction)
            batch_idx = next(batches)
            for loss in losses if isinstance(losses, tuple) else (losses,):
                if not torch.isfinite(loss).all():
                    raise NonFiniteLossError(epoch_idx, batch_idx, loss.detach().cpu().flatten()[0].item())
            return losses

        self._epoch_idx = epoch_idx
        start = time.perf_counter()
        total_loss = super()._train_epoch(train_data, epoch_idx, checked_loss, show_progress)
        self.epoch_seconds.append(time.perf_counter() - start)
        statistics = getattr(self.model, "epoch_statistics", None)
        self.epoch_statistics.append(statistics() if callable(statistics) else {})
        if not (self._evaluates and (epoch_idx + 1) % self.eval_step == 0):
            self._end_epoch(epoch_idx)  # an evaluated epoch ends after its validation
        return total_loss

    def _autocast(self):
        return acceleration.autocast(self.device, self.mixed_precision)

    def _generate_train_loss_output(self, epoch_idx, s_time, e_time, losses):
        """RecBole's train-loss line ``epoch N training [time: ..., train loss: ...]``
        with the model's statistics of the epoch added inside the brackets."""
        line = super()._generate_train_loss_output(epoch_idx, s_time, e_time, losses)
        added = "".join(f", {set_color(key, 'blue')}: {value:.4f}" for key, value in self.epoch_statistics[-1].items())
        return line[:-1] + added + "]"

    def _valid_epoch(self, valid_data, show_progress=False):
        """RecBole's validation, recording the curve; an evaluation that
        :meth:`fit` will count as the new best (RecBole's ``early_stopping``
        rule) also sets ``best_epoch`` and ``best_valid_result`` here, before
        :meth:`fit` saves the checkpoint that stores them."""
        self._validating = True
        try:
            valid_score, valid_result = super()._valid_epoch(valid_data, show_progress)
        finally:
            self._validating = False
        self.valid_curve.append(float(valid_score))
        *_, improved = early_stopping(
            valid_score, self.best_valid_score, self.cur_step, self.stopping_step, self.valid_metric_bigger
        )
        if improved:
            self.best_epoch = self._epoch_idx + 1
            self.best_valid_result = valid_result
        return valid_score, valid_result

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """RecBole's ``evaluate`` under the run's ``mixed_precision``; the
        best model is read with :func:`recbole_selfattn.checkpoint.load`
        (weights only)."""
        if load_best_model:
            if not self.config["single_spec"]:
                torch.distributed.barrier()
            if eval_data:
                checkpoint_file = model_file or self.saved_model_file
                self._load_weights(checkpoint_file, checkpoint.load(checkpoint_file, map_location=self.device))
                self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        self._per_user_batches = []
        with self._autocast():
            result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        if self._per_user_batches:
            users, values = (torch.cat(parts) for parts in zip(*self._per_user_batches))
            tokens = eval_data._dataset.field2id_token[eval_data._dataset.uid_field]
            self.per_user_result = {"users": [str(tokens[u]) for u in users.tolist()]}
            for k in self.config["topk"]:
                self.per_user_result[f"ndcg@{k}"] = values[:, k - 1].tolist()
        return result

    def _full_sort_batch_eval(self, batched_data):
        """RecBole's full-sort scores of a batch, keeping each row's NDCG@k
        (the rows RecBole's collector ranks, with the same ``torch.topk``)."""
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        uid_field = self.config["USER_ID_FIELD"]
        keep = not self._validating and self.config["single_spec"]  # a rank sees only its share of users
        if keep and uid_field in interaction:
            positives = torch.zeros_like(scores, dtype=torch.int)
            positives[positive_u, positive_i] = 1
            hits = torch.gather(positives, 1, torch.topk(scores, max(self.config["topk"]), dim=-1).indices)
            ndcg = NDCG(self.config).metric_info(hits.bool().cpu().numpy(), positives.sum(dim=1).cpu().numpy())
            self._per_user_batches.append((interaction[uid_field].cpu(), torch.from_numpy(ndcg)))
        return interaction, scores, positive_u, positive_i
