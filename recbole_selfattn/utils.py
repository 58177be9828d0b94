"""Model and trainer resolution: the plugin's models first, RecBole's after.

As RecBole-GNN's ``get_model``/``get_trainer``, but nothing is listed by
hand: a plugin model is a module ``model/<name>.py`` defining the
:class:`~recbole.model.abstract_recommender.SequentialRecommender` subclass
``<Model>`` next to its property file ``properties/model/<Model>.yaml``
(``docs/adding-a-model.md``). Any other name resolves to RecBole's built-in
of that name. Names are found by reading file names and class statements,
so listing models (``--help``) imports no model code. Unknown names fail
with a list of close matches instead of RecBole's confusing ``lightgbm``
import error.
"""

import ast
import difflib
import functools
import importlib
import importlib.util
import types
import warnings
from pathlib import Path

from recbole.utils import ModelType
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_selfattn.errors import UnknownModelError

_PACKAGE = Path(__file__).resolve().parent

_RECBOLE_MODEL_PACKAGES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
)


def properties_dir():
    """The plugin's ``properties/`` folder, inside the package as in RecBole."""
    return _PACKAGE / "properties"


def plugin_model_names():
    """The plugin's models, sorted case-blind: every ``model/<name>.py`` with a property
    file ``properties/model/<Model>.yaml`` whose lower-cased name is ``<name>``."""
    modules = {path.stem for path in (_PACKAGE / "model").glob("*.py")}
    names = [path.stem for path in (properties_dir() / "model").glob("*.yaml") if path.stem.lower() in modules]
    return sorted(names, key=str.lower)


PLUGIN_MODELS = tuple(plugin_model_names())


def _class_names(source_file, module_name):
    """Names of the classes defined in ``source_file`` whose lower-cased name
    is ``module_name`` (RecBole's convention), read without importing it."""
    with warnings.catch_warnings():  # RecBole's docstrings hold invalid escapes ('\p')
        warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
        tree = ast.parse(Path(source_file).read_text(encoding="utf-8"))
    return [node.name for node in tree.body if isinstance(node, ast.ClassDef) and node.name.lower() == module_name]


@functools.lru_cache(maxsize=None)
def recbole_model_classes(packages=_RECBOLE_MODEL_PACKAGES):
    """Map RecBole's model class names to their module path (``SASRec`` ->
    ``recbole.model.sequential_recommender.sasrec``), without importing them
    (RecBole's ``exlib`` package needs lightgbm and xgboost just to be imported).
    Parsing the sources takes ~0.2 s, so it is done once per process (read-only map)."""
    root = Path(importlib.util.find_spec("recbole.model").submodule_search_locations[0])
    classes = {}
    for package in packages:
        for path in sorted((root / package).glob("*.py")):
            for name in _class_names(path, path.stem):
                classes[name] = f"recbole.model.{package}.{path.stem}"
    return types.MappingProxyType(classes)


def sequential_model_names():
    """Plugin models followed by RecBole's sequential built-ins (for --help)."""
    return list(PLUGIN_MODELS), sorted(recbole_model_classes(("sequential_recommender",)), key=str.lower)


def get_model(model_name):
    """Return the model class for ``model_name`` (a plugin model or any
    RecBole built-in, e.g. ``SASRec``)."""
    from recbole.model.abstract_recommender import SequentialRecommender

    if model_name in PLUGIN_MODELS:
        model = getattr(importlib.import_module(f"recbole_selfattn.model.{model_name.lower()}"), model_name, None)
        if isinstance(model, type) and issubclass(model, SequentialRecommender):
            return model
        raise UnknownModelError(
            f"recbole_selfattn/model/{model_name.lower()}.py defines no SequentialRecommender subclass named "
            f"'{model_name}', although properties/model/{model_name}.yaml exists: name the class after its "
            "property file (docs/adding-a-model.md)."
        )
    module = recbole_model_classes().get(model_name)
    if module is not None:
        return getattr(importlib.import_module(module), model_name)
    raise UnknownModelError(_unknown_model_message(model_name))


def _unknown_model_message(model_name):
    names = list(PLUGIN_MODELS) + list(recbole_model_classes())
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


def _named_trainer(model_name):
    """``<Model>Trainer`` from the plugin's trainer module, else from
    ``recbole.trainer``; ``None`` where neither has one."""
    for module in ("recbole_selfattn.trainer", "recbole.trainer"):
        trainer = getattr(importlib.import_module(module), f"{model_name}Trainer", None)
        if trainer is not None:
            return trainer
    return None


def get_trainer(model_type, model_name):
    """The trainer class of ``model_name``.

    A ``<Model>Trainer`` is used where one exists (the plugin's first, then
    RecBole's, e.g. ``S3RecTrainer``). For a sequential model it is combined
    with the plugin's :class:`~recbole_selfattn.trainer.SequentialTrainer`
    (per-epoch timing, validation curve, finite-loss check, resumable
    checkpoints), which the model's own trainer steps go through; a
    sequential model without one gets ``SequentialTrainer`` itself. Other
    models get RecBole's own choice."""
    trainer = _named_trainer(model_name)
    if model_type != ModelType.SEQUENTIAL:
        return trainer or recbole_get_trainer(model_type, model_name)
    from recbole_selfattn.trainer import SequentialTrainer

    if trainer is None:
        return SequentialTrainer
    if issubclass(trainer, SequentialTrainer):
        return trainer
    return type(trainer.__name__, (trainer, SequentialTrainer), {"__module__": __name__, "__doc__": trainer.__doc__})
