"""The fast path for RecBole's Transformer models and Caser: on by default, off with ``fast_path: False``.

After ``import recbole_selfattn``, RecBole's ``TransformerEncoder`` (SASRec,
BERT4Rec, FDSA, S3Rec, ...) and SASRec's own ``forward`` run the functions of
:mod:`recbole_selfattn.fastpath.transformer`, and Caser's ``forward`` those of
:mod:`recbole_selfattn.fastpath.caser`, on the models' own parameters, so
outputs and gradients equal RecBole's within float32 rounding and
checkpoints are interchangeable. Building a sequential model on the fast path
also keeps freed memory in the process (:mod:`recbole_selfattn.fastpath.allocator`:
large tensors are not paged in anew at every allocation), for RecBole's
models and the plugin's alike. The plugin's trainer fuses Adam and AdamW on the fast path
(:mod:`recbole_selfattn.fastpath.optimizer`). A model built from a config with
``fast_path: False`` (``--fast_path=False``) runs RecBole's code, optimiser
and glibc's default allocation unchanged.
The patches are installed when RecBole's model modules are first imported,
so importing the plugin still imports no model code.
"""

import functools

import torch

from recbole_selfattn.compat import after_import
from recbole_selfattn.fastpath import allocator

_LAYERS = "recbole.model.layers"
_SASREC = "recbole.model.sequential_recommender.sasrec"
_CASER = "recbole.model.sequential_recommender.caser"
_BASE = "recbole.model.abstract_recommender"


def enabled(module):
    """Whether ``module`` (a model or one of its layers) runs the fast path."""
    return module.__dict__.get("fast_path", True)


def _record_choice(init):
    """Wrap ``SequentialRecommender.__init__`` to read ``fast_path`` (default
    True) from the config before the model builds its layers, and set the
    allocator to match."""

    @functools.wraps(init)
    def wrapped(self, config, dataset):
        self.fast_path = config["fast_path"] is not False
        allocator.retain_freed_memory(self.fast_path)
        init(self, config, dataset)

    return wrapped


def _pass_choice_on(setattr_):
    """Wrap the model's ``__setattr__``: a layer assigned to a model with
    ``fast_path`` False (a ``TransformerEncoder``, or a module holding one) is
    marked False too, so RecBole's whole model runs its own code."""

    @functools.wraps(setattr_)
    def wrapped(self, name, value):
        setattr_(self, name, value)
        if isinstance(value, torch.nn.Module) and not self.__dict__.get("fast_path", True):
            for module in value.modules():
                module.fast_path = False

    return wrapped


def _patch_base():
    from recbole.model.abstract_recommender import SequentialRecommender

    SequentialRecommender.__init__ = _record_choice(SequentialRecommender.__init__)
    SequentialRecommender.__setattr__ = _pass_choice_on(SequentialRecommender.__setattr__)


def _patch_encoder():
    from recbole.model.layers import TransformerEncoder

    from recbole_selfattn.fastpath import transformer

    _patch_forward(TransformerEncoder, transformer.encode)


def _patch_forward(cls, fast_forward):
    """Run ``fast_forward(module, ...)`` (the same arguments and defaults) as
    ``cls.forward`` on the fast path; RecBole's forward stays available as
    ``recbole_forward``."""
    recbole_forward = cls.forward

    @functools.wraps(recbole_forward)
    def forward(self, *args, **kwargs):
        if enabled(self):
            return fast_forward(self, *args, **kwargs)
        return recbole_forward(self, *args, **kwargs)

    cls.forward = forward
    cls.recbole_forward = recbole_forward


def _patch_sasrec():
    from recbole.model.sequential_recommender.sasrec import SASRec

    from recbole_selfattn.fastpath import sasrec

    _patch_forward(SASRec, sasrec.forward)


def _patch_caser():
    from recbole.model.sequential_recommender.caser import Caser

    from recbole_selfattn.fastpath import caser

    _patch_forward(Caser, caser.forward)


def apply():
    """Install the patches (each when its RecBole module is first imported)."""
    after_import(_BASE, _patch_base)
    after_import(_LAYERS, _patch_encoder)
    after_import(_SASREC, _patch_sasrec)
    after_import(_CASER, _patch_caser)
