"""recbole-selfattn: AttRec, MTAW and MIND as RecBole sequential recommenders.

Importing the package applies the compatibility fixes of
:mod:`recbole_selfattn.compat` (RecBole 1.2.1 on numpy 2 / torch >= 2.6) and
makes RecBole's own ``Config``, ``create_dataset`` and ``recbole.quick_start``
run the plugin's models (:mod:`recbole_selfattn.dropin`); RecBole's Transformer
models take the fast path of :mod:`recbole_selfattn.fastpath` unless
``fast_path: False``.
Models are imported on first use: ``from recbole_selfattn import AttRec``.
"""

from recbole_selfattn import compat, dropin, fastpath, output

compat.apply()
dropin.apply()
fastpath.apply()
output.quiet_library_warnings()

from recbole_selfattn.config import Config  # noqa: E402
from recbole_selfattn.utils import PLUGIN_MODELS, get_model, get_trainer  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Config", "get_model", "get_trainer", "run", "recommend", "Recommender", *PLUGIN_MODELS]


def __getattr__(name):
    if name in PLUGIN_MODELS:
        return get_model(name)
    if name == "run":
        from recbole_selfattn.quick_start import run

        return run
    if name in ("recommend", "Recommender"):
        from recbole_selfattn import recommender

        return getattr(recommender, name)
    raise AttributeError(f"module 'recbole_selfattn' has no attribute '{name}'")
