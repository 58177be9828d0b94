"""RecBole's own entry points, made to work for the plugin (true drop-in).

:func:`apply` runs once when :mod:`recbole_selfattn` is imported (after
:mod:`recbole_selfattn.compat`). From then on a RecBole user's script runs
plugin models as RecBole's docs teach, and RecBole's quick start works on
today's packages:

* **Models by name.** RecBole's ``get_model`` (as ``recbole.utils``, its
  ``Config`` and its quick start call it) resolves the plugin's models too;
  every other name goes to RecBole's own lookup.
* **Config.** RecBole's ``Config(model=MTAW, ...)`` (class or name) layers
  the plugin's protocol and property files exactly as
  :class:`recbole_selfattn.config.Config` does for a plugin model
  (:func:`recbole_selfattn.config.load_plugin_properties`).
* **Datasets.** RecBole's ``create_dataset`` and ``data_preparation`` (as
  ``recbole.data``, ``recbole.data.utils`` and the quick start bind them) are
  the plugin's (:mod:`recbole_selfattn.data.utils`): they find a plugin
  model's ``<Model>Dataset`` (e.g. ``AttRecDataset``) and never unpickle a
  saved dataset or dataloader file, which RecBole's own would load and run.
* **Quick start without ray.** ``recbole.quick_start`` imports ray at module
  level, only for ``tune.report`` in ``objective_function``; ray 2.6 needs
  ``pkg_resources``, which setuptools >= 82 no longer has. The module is
  imported with :class:`LazyTune` in place of ``ray.tune``: the real
  ``ray.tune`` is imported on first use, and ``report`` outside a Ray Tune
  trial (which is every call when ray cannot be imported) does nothing, as
  ray's own does; any other use without ray fails in one paragraph naming
  what to use instead. ``ray`` itself is left alone in ``sys.modules``.
* **Checkpoints.** ``load_data_and_model`` reads checkpoints weights-only
  (:func:`recbole_selfattn.checkpoint.load`) and rebuilds the config from the
  checkpoint's plain data; RecBole's pretraining saves (S3Rec's
  ``PretrainTrainer``) store plain data, and the model modules that load a
  pretrained file (S3Rec, NeuMF, ...) read it weights-only.
"""

import importlib
import sys
import types

from recbole_selfattn import checkpoint
from recbole_selfattn.compat import safe_checkpoint_loading
from recbole_selfattn.errors import UsageError

# RecBole model modules that ``torch.load`` a pretrained checkpoint in ``__init__``.
_MODULES_LOADING_CHECKPOINTS = {
    "recbole.model.sequential_recommender.s3rec",
    "recbole.model.general_recommender.convncf",
    "recbole.model.general_recommender.nais",
    "recbole.model.general_recommender.neumf",
    "recbole.model.general_recommender.ract",
    "recbole.model.context_aware_recommender.kd_dagfm",
}

_QUICK_START = "recbole.quick_start.quick_start"


def is_plugin_model(model_class):
    """Whether ``model_class`` is one of the plugin's models."""
    return model_class.__module__.startswith("recbole_selfattn.")


def _recbole_get_model():
    import recbole.utils.utils as recbole_utils

    return getattr(recbole_utils.get_model, "recbole_get_model", recbole_utils.get_model)


def get_model(model_name):
    """A plugin model by name, else RecBole's own ``get_model``; a RecBole
    model whose module loads pretrained checkpoints gets the weights-only loader."""
    from recbole_selfattn.utils import PLUGIN_MODELS
    from recbole_selfattn.utils import get_model as plugin_get_model

    if model_name in PLUGIN_MODELS:
        return plugin_get_model(model_name)
    model_class = get_model.recbole_get_model(model_name)
    if model_class.__module__ in _MODULES_LOADING_CHECKPOINTS:
        safe_checkpoint_loading(sys.modules[model_class.__module__])
    return model_class


def _patch_get_model():
    import recbole.config.configurator as configurator
    import recbole.utils as recbole_utils
    import recbole.utils.utils as recbole_utils_utils

    get_model.recbole_get_model = _recbole_get_model()
    for module in (configurator, recbole_utils, recbole_utils_utils):
        module.get_model = get_model


def _patch_config():
    from recbole.config import Config

    from recbole_selfattn.config import load_plugin_properties

    recbole_load = getattr(Config._load_internal_config_dict, "recbole_load", Config._load_internal_config_dict)

    def _load_internal_config_dict(self, model, model_class, dataset):
        recbole_load(self, model, model_class, dataset)
        if is_plugin_model(model_class):
            load_plugin_properties(self, model, model_class, dataset)

    _load_internal_config_dict.recbole_load = recbole_load
    _load_internal_config_dict.__doc__ = "RecBole's property files, then the plugin's for a plugin model."
    Config._load_internal_config_dict = _load_internal_config_dict


def _register_datasets():
    import recbole.data as recbole_data
    import recbole.data.dataset as recbole_datasets
    import recbole.data.utils as recbole_data_utils

    from recbole_selfattn.data import dataset as plugin_datasets
    from recbole_selfattn.data import utils as plugin_data_utils

    for name in dir(plugin_datasets):
        if name.endswith("Dataset") and getattr(plugin_datasets, name).__module__ == plugin_datasets.__name__:
            setattr(recbole_datasets, name, getattr(plugin_datasets, name))
    for module in (recbole_data, recbole_data_utils):
        module.create_dataset = plugin_data_utils.create_dataset
        module.data_preparation = plugin_data_utils.data_preparation


class LazyTune(types.ModuleType):
    """``ray.tune`` as RecBole's quick start sees it: imported on first use."""

    def __init__(self):
        super().__init__("ray.tune")

    def __getattr__(self, name):
        return getattr(_import_tune(), name)

    @staticmethod
    def report(*args, **kwargs):
        """``tune.report`` inside a Ray Tune trial; nothing otherwise (no
        trial can run where ray cannot be imported)."""
        try:
            tune = _import_tune()
        except UsageError:
            return None
        return tune.report(*args, **kwargs)


def _import_tune():
    try:
        from ray import tune
    except ImportError as e:
        raise UsageError(
            f"Ray Tune could not be imported ({type(e).__name__}: {e}), so RecBole's Ray helpers cannot run: "
            "ray 2.6 (RecBole 1.2.1's) needs pkg_resources, which setuptools >= 82 no longer has. Tune with "
            "`python run_hyper.py --tool=hyperopt` (recbole_selfattn.hyper) or RecBole's HyperTuning with "
            "hyperopt instead; run_recbole, objective_function and load_data_and_model need no ray."
        ) from e
    return tune


def _import_quick_start_without_ray():
    """Import ``recbole.quick_start`` with :class:`LazyTune` as ``ray.tune``.

    A stand-in ``ray`` sits in ``sys.modules`` only while the module is
    imported, unless the real ray is already loaded (then it is used)."""
    if _QUICK_START in sys.modules or "ray" in sys.modules:
        return importlib.import_module(_QUICK_START)
    stand_in = types.ModuleType("ray")
    stand_in.tune = LazyTune()
    sys.modules["ray"] = stand_in
    try:
        return importlib.import_module(_QUICK_START)
    finally:
        if sys.modules.get("ray") is stand_in:
            del sys.modules["ray"]


def _save_pretrained_model(trainer, epoch, saved_model_file):
    """RecBole's ``PretrainTrainer.save_pretrained_model``, storing plain data atomically."""
    checkpoint.save(checkpoint.trainer_state(trainer, epoch), saved_model_file)
    trainer.saved_model_file = saved_model_file


def _patch_quick_start():
    quick_start = _import_quick_start_without_ray()
    import recbole.quick_start as quick_start_package
    import recbole.trainer.trainer as trainer_module

    from recbole_selfattn.data.utils import create_dataset, data_preparation
    from recbole_selfattn.quick_start import load_data_and_model

    quick_start.get_model = get_model
    quick_start.create_dataset, quick_start.data_preparation = create_dataset, data_preparation
    for module in (quick_start, quick_start_package):
        module.load_data_and_model = load_data_and_model
    trainer_module.PretrainTrainer.save_pretrained_model = _save_pretrained_model


def apply():
    _patch_get_model()
    _patch_config()
    _register_datasets()
    _patch_quick_start()
    for name in _MODULES_LOADING_CHECKPOINTS & set(sys.modules):
        safe_checkpoint_loading(sys.modules[name])
