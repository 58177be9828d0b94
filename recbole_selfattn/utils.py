"""Model and trainer resolution: the plugin's models first, RecBole's after.

Mirrors RecBole-GNN's ``get_model``/``get_trainer``: a plugin name resolves
to the class in :mod:`recbole_selfattn.model`, any other name to RecBole's
built-in of that name. Unknown names fail with a list of close matches
instead of RecBole's confusing ``lightgbm`` import error.
"""

import difflib
import importlib
import pkgutil

import recbole.model
from recbole.utils import ModelType
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_selfattn.errors import UnknownModelError

PLUGIN_MODELS = ("AttRec", "MTAW", "MIND")

_RECBOLE_MODEL_PACKAGES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
)


def recbole_model_modules(packages=_RECBOLE_MODEL_PACKAGES):
    """Map RecBole's model module names (lower-case model names) to their
    package, without importing them (RecBole's ``exlib`` package needs
    lightgbm and xgboost just to be imported)."""
    modules = {}
    for package in packages:
        path = [f"{recbole.model.__path__[0]}/{package}"]
        for info in pkgutil.iter_modules(path):
            modules[info.name] = package
    return modules


def _import_class(module_path, name):
    module = importlib.import_module(module_path)
    if not hasattr(module, name):
        raise AttributeError(name)
    return getattr(module, name)


def get_model(model_name):
    """Return the model class for ``model_name`` (a plugin model or any
    RecBole built-in, e.g. ``SASRec``)."""
    if model_name in PLUGIN_MODELS:
        return _import_class(f"recbole_selfattn.model.{model_name.lower()}", model_name)
    package = recbole_model_modules().get(model_name.lower())
    if package is not None:
        try:
            return _import_class(f"recbole.model.{package}.{model_name.lower()}", model_name)
        except AttributeError:
            pass  # right module, wrong capitalisation: reported below
    raise UnknownModelError(_unknown_model_message(model_name))


def _model_classes_in(modules):
    """Class names of the RecBole models in ``modules`` (module name -> package);
    modules whose optional dependencies are missing are skipped."""
    names = []
    for module_name, package in sorted(modules.items()):
        try:
            module = importlib.import_module(f"recbole.model.{package}.{module_name}")
        except ImportError:
            continue
        names += [n for n in dir(module) if n.lower() == module_name]
    return names


def _unknown_model_message(model_name):
    names = list(PLUGIN_MODELS) + _model_classes_in(recbole_model_modules())
    by_lower = {n.lower(): n for n in names}
    if model_name.lower() in by_lower:
        hint = f"Model names are case-sensitive: did you mean '{by_lower[model_name.lower()]}'?"
    else:
        close = difflib.get_close_matches(model_name, names, n=3, cutoff=0.6)
        hint = f"Did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        hint += "Run `python run.py --help` for the list of models."
    return (
        f"Unknown model '{model_name}'. recbole-selfattn provides "
        f"{', '.join(PLUGIN_MODELS)} and can run any RecBole built-in model "
        f"(e.g. SASRec, Caser, GRU4Rec). {hint}"
    )


def sequential_model_names():
    """Plugin models followed by RecBole's sequential built-ins (for --help)."""
    return list(PLUGIN_MODELS), _model_classes_in(recbole_model_modules(("sequential_recommender",)))


def get_trainer(model_type, model_name):
    """The plugin's trainer for sequential models (RecBole's ``Trainer`` plus
    per-epoch timing, validation curves and a finite-loss check), else
    RecBole's own choice."""
    if model_type == ModelType.SEQUENTIAL:
        from recbole_selfattn.trainer import SequentialTrainer

        return SequentialTrainer
    return recbole_get_trainer(model_type, model_name)
