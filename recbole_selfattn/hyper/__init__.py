"""Hyper-parameter search, RecBole style:
``python run_hyper.py --model=AttRec --dataset=ml-100k``.

The library apart from its command line, as RecBole's
``recbole/trainer/hyper_tuning.py`` beside ``run_hyper.py``:

* :mod:`~recbole_selfattn.hyper.space`: ``.hyper`` files (RecBole's format)
  read and checked, and the space in hyperopt's and Ray Tune's terms;
* :mod:`~recbole_selfattn.hyper.trials`: what one trial runs and records;
* :mod:`~recbole_selfattn.hyper.hyperopt_tool`: ``--tool=hyperopt`` (default),
  RecBole's :class:`~recbole.trainer.hyper_tuning.HyperTuning`, fixed and seeded;
* :mod:`~recbole_selfattn.hyper.ray_tool`: ``--tool=ray``, Ray Tune;
* :mod:`~recbole_selfattn.hyper.search`: :func:`search`, one search whichever the tool;
* :mod:`~recbole_selfattn.hyper.cli`: the command line (:func:`main`).

Every trial trains through the plugin's own pipeline
(:func:`recbole_selfattn.quick_start.run`), so plugin models and RecBole
built-ins are both searchable; RecBole's ``objective_function`` cannot build
a plugin model and imports ray at module level. Neither tool is imported
before a search needs it.
"""

from recbole_selfattn.hyper.cli import main, parse_args
from recbole_selfattn.hyper.hyperopt_tool import HyperTuning, grid_suggest, hyperopt_search
from recbole_selfattn.hyper.ray_tool import import_tune, ray_search
from recbole_selfattn.hyper.search import ALGOS, TOOLS, search
from recbole_selfattn.hyper.space import (
    PARAM_TYPES,
    Param,
    check_params,
    default_params_file,
    hyperopt_space,
    read_params_file,
    tune_space,
)
from recbole_selfattn.hyper.trials import INSTALL_HINT, Objective, trial_line, write_result

__all__ = [
    "ALGOS", "INSTALL_HINT", "PARAM_TYPES", "TOOLS", "HyperTuning", "Objective", "Param", "check_params",
    "default_params_file", "grid_suggest", "hyperopt_search", "hyperopt_space", "import_tune", "main",
    "parse_args", "ray_search", "read_params_file", "search", "trial_line", "tune_space", "write_result",
]
