"""The search space: RecBole's ``.hyper`` files, read and checked, and the
space in hyperopt's and Ray Tune's terms.

A ``.hyper`` file has one parameter a line::

    learning_rate choice [0.0005,0.001,0.005]    # any Python literal list
    dropout_prob uniform 0.1,0.5                  # low,high
    L quniform 3,10,1                             # low,high,q (integers give integers)
    learning_rate loguniform -8,0                 # exp(uniform(low, high)), as hyperopt

The shipped files, ``properties/hyper/<Model>.hyper``, are grids (``choice``
only) over each plugin model's key parameters, so RecBole's default
exhaustive search applies; RecBole's own parser reads them too.
"""

import ast
import math
from dataclasses import dataclass
from pathlib import Path

from recbole_selfattn.errors import UsageError
from recbole_selfattn.utils import properties_dir

PARAM_TYPES = ("choice", "uniform", "quniform", "loguniform")


@dataclass(frozen=True)
class Param:
    """One line of a ``.hyper`` file.

    ``values`` holds the options of a ``choice``, ``(low, high)`` of a
    ``uniform``/``loguniform`` and ``(low, high, q)`` of a ``quniform``."""

    name: str
    kind: str
    values: tuple

    @property
    def integer(self):
        """A ``quniform`` whose bounds and step are whole numbers samples integers."""
        return self.kind == "quniform" and all(float(v).is_integer() for v in self.values)


def default_params_file(model):
    """The shipped search space of ``model``, inside the installed package too."""
    return properties_dir() / "hyper" / f"{model}.hyper"


def read_params_file(path):
    """Parse a ``.hyper`` file into a list of :class:`Param`.

    Blank lines and lines starting with ``#`` are skipped. Anything else that
    is not ``NAME TYPE VALUE`` with a valid value raises :class:`UsageError`
    naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"Hyper-parameter file '{path}' does not exist. Pass --params_file=FILE with one "
            "'NAME TYPE VALUE' line per parameter (TYPE one of choice, uniform, quniform, loguniform), "
            "e.g. 'learning_rate choice [0.001,0.01]'."
        )
    params = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        param = _parse_line(text, f"{path}, line {number}")
        if any(p.name == param.name for p in params):
            raise UsageError(f"{path}, line {number}: '{param.name}' is searched twice; keep one line for it.")
        params.append(param)
    if not params:
        raise UsageError(
            f"Hyper-parameter file '{path}' defines no parameter: add lines like 'learning_rate choice [0.001,0.01]'."
        )
    return params


def _parse_line(text, where):
    parts = text.split(None, 2)
    if len(parts) < 3:
        raise UsageError(f"{where}: '{text}' is not 'NAME TYPE VALUE' (e.g. 'learning_rate choice [0.001,0.01]').")
    name, kind, value = parts
    if kind not in PARAM_TYPES:
        raise UsageError(f"{where}: unknown type '{kind}' for '{name}'; use one of {', '.join(PARAM_TYPES)}.")
    if kind == "choice":
        try:
            options = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options = None
        if not isinstance(options, (list, tuple)) or not options:
            raise UsageError(
                f"{where}: the options of '{name}' must be a non-empty list of literals, e.g. [32,64]; got {value}."
            )
        return Param(name, kind, tuple(options))
    arity = 3 if kind == "quniform" else 2
    try:
        bounds = tuple(float(v) for v in value.replace(" ", "").split(","))
    except ValueError:
        bounds = ()
    expected = "low,high,q" if arity == 3 else "low,high"
    if len(bounds) != arity or not all(math.isfinite(b) for b in bounds) or bounds[0] >= bounds[1]:
        raise UsageError(f"{where}: '{name} {kind}' needs {expected} numbers with low < high; got {value}.")
    if arity == 3 and bounds[2] <= 0:
        raise UsageError(f"{where}: the step q of '{name}' must be > 0; got {value}.")
    return Param(name, kind, bounds)


def check_params(params, config, overrides, algo):
    """Reject a search that cannot do what it says: an unknown key (a typo
    RecBole would ignore), a key also fixed by ``--KEY=VALUE`` (which would
    win over every trial's value), or a non-grid space for exhaustive search."""
    for param in params:
        if param.name not in config.final_config_dict:
            raise UsageError(
                f"'{param.name}' is not a config key of {config['model']} (not in RecBole's or the model's "
                "properties); check its spelling in the hyper-parameter file."
            )
        if any(arg.startswith(f"--{param.name}=") for arg in overrides):
            raise UsageError(
                f"--{param.name} is given on the command line and also searched; the command line would win "
                "over every trial. Remove one of them."
            )
    continuous = [p.name for p in params if p.kind != "choice"]
    if algo == "exhaustive" and continuous:
        raise UsageError(
            f"Exhaustive search needs a grid, but {', '.join(continuous)} "
            f"{'is' if len(continuous) == 1 else 'are'} sampled from a range. Use --algo=random or "
            "--algo=bayes with --max_evals=N, or list the values with 'choice [...]'."
        )


def hyperopt_space(params):
    """The hyperopt space of ``params``, as RecBole's ``_build_space_from_file``
    (integer ``quniform`` parameters are cast to ``int``)."""
    from hyperopt import hp
    from hyperopt.pyll import scope

    space = {}
    for p in params:
        if p.kind == "choice":
            space[p.name] = hp.choice(p.name, list(p.values))
        elif p.kind == "uniform":
            space[p.name] = hp.uniform(p.name, *p.values)
        elif p.kind == "loguniform":
            space[p.name] = hp.loguniform(p.name, *p.values)
        else:
            sampler = hp.quniform(p.name, *p.values)
            space[p.name] = scope.int(sampler) if p.integer else sampler
    return space


def tune_space(params, tune, grid):
    """The Ray Tune search space of ``params`` (``tune`` is ``ray.tune``).

    ``grid`` turns every ``choice`` into ``tune.grid_search``. ``loguniform``
    keeps hyperopt's meaning: its bounds are exponents of e."""
    space = {}
    for p in params:
        if p.kind == "choice":
            space[p.name] = tune.grid_search(list(p.values)) if grid else tune.choice(list(p.values))
        elif p.kind == "uniform":
            space[p.name] = tune.uniform(*p.values)
        elif p.kind == "loguniform":
            space[p.name] = tune.loguniform(math.exp(p.values[0]), math.exp(p.values[1]))
        elif p.integer:
            low, high, q = (int(v) for v in p.values)
            space[p.name] = tune.qrandint(low, high, q)
        else:
            space[p.name] = tune.quniform(*p.values)
    return space
