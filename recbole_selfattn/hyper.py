"""Hyper-parameter search, RecBole style:
``python run_hyper.py --model=AttRec --dataset=ml-100k``.

The search space is a RecBole ``.hyper`` file, one parameter a line::

    learning_rate choice [0.0005,0.001,0.005]    # any Python literal list
    dropout_prob uniform 0.1,0.5                  # low,high
    L quniform 3,10,1                             # low,high,q (integers give integers)
    learning_rate loguniform -8,0                 # exp(uniform(low, high)), as hyperopt

The shipped files, ``properties/hyper/<Model>.hyper``, are grids (``choice``
only) over each plugin model's key parameters, so RecBole's default
exhaustive search applies; RecBole's own parser reads them too.

Two tools run the search:

* ``hyperopt`` (default): RecBole's :class:`~recbole.trainer.hyper_tuning.HyperTuning`
  with algo ``exhaustive`` (the grid; only ``choice``), ``random`` or ``bayes``
  (TPE). :class:`HyperTuning` here seeds the search, records a trial whose
  training diverged instead of aborting the search, and ends the output file
  with the best parameters.
* ``ray``: Ray Tune's ``tune.run`` over the same space (``grid_search`` for
  exhaustive, Tune's seeded samplers for random, ``HyperOptSearch`` for
  bayes), one CPU (and a GPU when training uses one) per trial. Needs
  ``ray[tune]`` (its pyarrow included); ray 2.6, RecBole 1.2.1's, also needs
  ``pkg_resources`` (setuptools < 81) and, in every worker, the numpy
  aliases of :mod:`recbole_selfattn.compat` (installed by a worker setup hook).

Every trial trains through the plugin's own pipeline
(:func:`recbole_selfattn.quick_start.run`), so plugin models and RecBole
built-ins are both searchable; RecBole's ``objective_function`` cannot build
a plugin model and imports ray at module level.
"""

import ast
import math
import os
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from recbole.trainer.hyper_tuning import HyperTuning as RecBoleHyperTuning
from recbole.utils import dict2str

from recbole_selfattn import compat
from recbole_selfattn.errors import NonFiniteLossError, UsageError

PARAM_TYPES = ("choice", "uniform", "quniform", "loguniform")
TOOLS = ("hyperopt", "ray")
ALGOS = ("exhaustive", "random", "bayes")
INSTALL_HINT = 'pip install -e ".[tune]"'


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
    from recbole_selfattn.config import properties_dir

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


def _plain(value):
    """A numpy scalar sampled by hyperopt as the Python number it holds."""
    return value.item() if isinstance(value, np.generic) else value


class Objective:
    """What one trial runs: train, validate and test ``model`` through the
    plugin pipeline with the trial's parameters.

    Called as RecBole's ``objective_function(config_dict, config_file_list)``
    and returns the dict :class:`HyperTuning` reads (``model``,
    ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``,
    ``test_result``) plus ``valid_metric`` and ``seconds``."""

    def __init__(self, model, dataset, overrides=(), saved=True):
        self.model = model
        self.dataset = dataset
        self.overrides = list(overrides)
        self.saved = saved

    def __call__(self, config_dict, config_file_list=None):
        from recbole_selfattn.quick_start import run

        result = run(self.model, self.dataset, config_file_list, config_dict=dict(config_dict),
                     saved=self.saved, cmd_args=self.overrides)
        return {
            "model": self.model,
            "best_valid_score": result["best_valid_score"],
            "valid_score_bigger": result["valid_score_bigger"],
            "best_valid_result": result["best_valid_result"],
            "test_result": result["test_result"],
            "valid_metric": result["config"]["valid_metric"].lower(),
            "seconds": result["wall_seconds"],
        }


def trial_line(number, total, params_str, result):
    """The one-line log of a finished trial."""
    head = f"[trial {number}/{total}] {params_str}"
    if "error" in result:
        return f"{head}: failed, {result['error']}"
    metric = result["valid_metric"]
    return (
        f"{head}: valid {metric}={result['best_valid_score']:.4f}, "
        f"test {metric}={result['test_result'].get(metric, float('nan')):.4f} ({result['seconds']:.1f} s)"
    )


def write_result(output_file, params2result, best_params_str):
    """Write every trial in RecBole's ``export_result`` format (parameters,
    ``Valid result:``, ``Test result:``), a failed trial with its error, and
    then the best trial."""
    with open(output_file, "w") as fp:
        for params_str, result in params2result.items():
            fp.write(params_str + "\n")
            if "error" in result:
                fp.write(f"Failed: {result['error']}\n\n")
                continue
            fp.write("Valid result:\n" + dict2str(result["best_valid_result"]) + "\n")
            fp.write("Test result:\n" + dict2str(result["test_result"]) + "\n\n")
        if best_params_str is None:
            fp.write("Best params: none (every trial failed)\n")
            return
        best = params2result[best_params_str]
        fp.write(f"Best params: {best_params_str}\n")
        fp.write("Best valid result:\n" + dict2str(best["best_valid_result"]) + "\n")
        fp.write("Best test result:\n" + dict2str(best["test_result"]) + "\n")


def grid_suggest(new_ids, domain, trials, seed, grid):
    """hyperopt algorithm drawing grid points of ``choice`` parameters at
    random without repetition, as RecBole's ``exhaustive_search`` (so that
    early stopping samples the whole grid, not its first rows).

    ``grid`` maps each parameter to its number of options. RecBole's version
    seeds a ``np.random.RandomState``, which hyperopt >= 0.2.7 cannot use
    (RecBole issue #1868); this one draws from hyperopt's ``seed``."""
    from hyperopt.base import miscs_update_idxs_vals

    names, shape = list(grid), tuple(grid.values())
    visited = {np.ravel_multi_index([t["misc"]["vals"][name][0] for name in names], shape) for t in trials.trials}
    unvisited = [index for index in range(math.prod(shape)) if index not in visited]
    picks = np.random.default_rng(seed).permutation(unvisited)[:len(new_ids)]
    docs = []
    for new_id, index in zip(new_ids, picks):
        point = np.unravel_index(index, shape)
        misc = dict(tid=new_id, cmd=domain.cmd, workdir=domain.workdir)
        miscs_update_idxs_vals([misc], {name: [new_id] for name in names},
                               {name: [int(i)] for name, i in zip(names, point)})
        docs += trials.new_trial_docs([new_id], [None], [domain.new_result()], [misc])
    return docs


class HyperTuning(RecBoleHyperTuning):
    """RecBole's :class:`~recbole.trainer.hyper_tuning.HyperTuning`, with:

    * exhaustive search by :func:`grid_suggest` (RecBole's fails on
      hyperopt >= 0.2.7), capped by ``max_evals`` too (RecBole replaces
      ``max_evals`` by the grid size);
    * a seeded search (``seed``; RecBole's draws from an unseeded generator);
    * a trial whose training diverges (:class:`NonFiniteLossError`, e.g. a
      too-large learning rate) recorded as failed, not ending the search;
    * a log line per trial, and the best parameters at the end of the output file.
    """

    def __init__(self, objective_function, params, fixed_config_file_list=None, algo="exhaustive",
                 max_evals=100, early_stop=10, seed=2020):
        super().__init__(objective_function, space=hyperopt_space(params),
                         fixed_config_file_list=fixed_config_file_list, algo=algo, max_evals=max_evals,
                         early_stop=early_stop)
        if algo == "exhaustive":
            self.algo = partial(grid_suggest, grid={p.name: len(p.values) for p in params})
            self.max_evals = int(min(self.max_evals, max_evals))
        self.seed = seed

    def trial(self, params):
        import hyperopt

        params = {name: _plain(params[name]) for name in self.space}  # in the .hyper file's order
        try:
            outcome = super().trial(params)
        except NonFiniteLossError as e:
            self.params2result[self.params2str(params)] = {"error": str(e)}
            outcome = {"loss": None, "status": hyperopt.STATUS_FAIL}
        print(trial_line(len(self.params_list), self.max_evals, self.params_list[-1],
                         self.params2result[self.params_list[-1]]), flush=True)
        return outcome

    def run(self):
        from hyperopt import fmin

        fmin(self.trial, self.space, algo=self.algo, max_evals=self.max_evals, early_stop_fn=self.early_stop_fn,
             rstate=np.random.default_rng(self.seed), return_argmin=False, show_progressbar=False)

    def best_params_str(self):
        return None if self.best_params is None else self.params2str(self.best_params)

    def export_result(self, output_file=None):
        write_result(output_file, self.params2result, self.best_params_str())


def hyperopt_search(objective, params, config_files, output_file, algo, max_evals, early_stop, seed):
    """Search with hyperopt, write ``output_file``; returns ``(params2result, best_params_str)``."""
    try:
        import hyperopt  # noqa: F401
    except ImportError as e:
        raise UsageError(
            f"--tool=hyperopt needs hyperopt, which could not be imported ({e}). Install it with "
            f'{INSTALL_HINT} (hyperopt >= 0.3; 0.2.7 imports pkg_resources, which setuptools >= 82 no longer has).'
        ) from e
    tuner = HyperTuning(objective, params, fixed_config_file_list=config_files, algo=algo,
                        max_evals=max_evals, early_stop=early_stop, seed=seed)
    tuner.run()
    tuner.export_result(output_file)
    return tuner.params2result, tuner.best_params_str()


def import_tune():
    """``ray.tune``, or a :class:`UsageError` saying how to install it."""
    try:
        from ray import tune
    except (ImportError, AttributeError) as e:
        raise UsageError(
            f"--tool=ray needs Ray Tune, which could not be imported ({type(e).__name__}: {e}). Install it with "
            f"{INSTALL_HINT}; ray 2.6 (RecBole 1.2.1's) also needs pkg_resources, i.e. setuptools < 81, and "
            "numpy's np.bool8, which recbole_selfattn restores. Or search with the default --tool=hyperopt."
        ) from e
    return tune


def _ray_trial(objective, config_files, config):
    result = objective(config, config_files)
    report = {"best_valid_score": result["best_valid_score"], "seconds": result["seconds"]}
    report.update({f"valid_{k}": v for k, v in result["best_valid_result"].items()})
    report.update({f"test_{k}": v for k, v in result["test_result"].items()})
    return report


def _from_report(report, valid_metric):
    def metrics(prefix):
        return {k[len(prefix):]: v for k, v in report.items() if k.startswith(prefix)}

    return {"best_valid_score": report["best_valid_score"], "best_valid_result": metrics("valid_"),
            "test_result": metrics("test_"), "valid_metric": valid_metric, "seconds": report["seconds"]}


def ray_search(objective, params, config_files, output_file, algo, max_evals, seed, bigger, valid_metric, use_gpu):
    """Search with Ray Tune, write ``output_file``; returns ``(params2result, best_params_str)``.

    Exhaustive search runs the whole grid (``max_evals`` is for random and
    bayes). Trials keep the current directory, so relative paths resolve as
    for hyperopt; results go to ``./ray_log``."""
    tune = import_tune()
    import ray

    mode = "max" if bigger else "min"
    if algo == "bayes":
        from ray.tune.search.hyperopt import HyperOptSearch

        search_alg = HyperOptSearch(hyperopt_space(params), metric="best_valid_score", mode=mode,
                                    random_state_seed=seed)
        space = None
    else:
        from ray.tune.search import BasicVariantGenerator

        search_alg = BasicVariantGenerator(random_state=seed)
        space = tune_space(params, tune, grid=algo == "exhaustive")

    def trainable(config):
        return _ray_trial(objective, config_files, config)

    started = not ray.is_initialized()
    if started:  # workers need the numpy aliases before ray unpickles the trainable
        ray.init(include_dashboard=False, runtime_env={"worker_process_setup_hook": compat.apply})
    try:
        analysis = tune.run(
            trainable,
            name=f"hyper_{objective.model}",
            config=space,
            search_alg=search_alg,
            num_samples=1 if algo == "exhaustive" else max_evals,
            metric="best_valid_score",
            mode=mode,
            resources_per_trial={"cpu": 1, "gpu": 1 if use_gpu else 0},
            storage_path=str(Path("ray_log").resolve()),
            chdir_to_trial_dir=False,
            raise_on_failed_trial=False,
            verbose=1,
        )
    finally:
        if started:
            ray.shutdown()

    def params_str(trial):
        return RecBoleHyperTuning.params2str({p.name: _plain(trial.config[p.name]) for p in params})

    params2result = {}
    for number, trial in enumerate(analysis.trials, start=1):
        key = params_str(trial)
        if trial.status == trial.ERROR or "best_valid_score" not in (trial.last_result or {}):
            params2result[key] = {"error": f"the trial failed, see {trial.error_file or 'ray_log'}"}
        else:
            params2result[key] = _from_report(trial.last_result, valid_metric)
        print(trial_line(number, len(analysis.trials), key, params2result[key]), flush=True)
    best = analysis.get_best_trial("best_valid_score", mode, "last")
    best_str = None if best is None else params_str(best)
    write_result(output_file, params2result, best_str)
    return params2result, best_str


USAGE = """\
usage: python run_hyper.py [--model=NAME] [--dataset=NAME] [--params_file=FILE] [--config_files=FILES]
                           [--tool=hyperopt|ray] [--algo=exhaustive|random|bayes] [--max_evals=N]
                           [--early_stop=N] [--search_seed=N] [--output_file=FILE] [--KEY=VALUE ...]

Search hyper-parameters: train, validate and test one model per point of the
search space, RecBole's HyperTuning style, and report the best point.

options:
  --model=NAME          a plugin model or RecBole built-in (default {model})
  --dataset=NAME        a dataset folder under data_path (default {dataset})
  --params_file=FILE    the search space, one 'NAME TYPE VALUE' line per parameter,
                        TYPE one of choice [a,b], uniform lo,hi, quniform lo,hi,q,
                        loguniform lo,hi (default: the shipped properties/hyper/MODEL.hyper)
  --config_files=FILES  YAML config files fixed for every trial, later win
  --tool=TOOL           hyperopt (default) or ray (Ray Tune; {install})
  --algo=ALGO           exhaustive (default; the whole 'choice' grid), random, or bayes (TPE)
  --max_evals=N         at most N trials (default 100)
  --early_stop=N        hyperopt: stop after N trials without a better validation score (default 10)
  --search_seed=N       seed of the search's own sampling (default 2020)
  --output_file=FILE    every trial's results and the best parameters (default hyper_MODEL.result)
  --KEY=VALUE           any config key fixed for every trial, e.g. --epochs=20 --state=WARNING
  -h, --help            show this message
"""

_OPTIONS = {"params_file": None, "tool": "hyperopt", "algo": "exhaustive", "max_evals": "100",
            "early_stop": "10", "search_seed": "2020", "output_file": None}


def parse_args(argv):
    """Split ``argv`` into the search options and RecBole's (model, dataset,
    config files, ``--key=value`` overrides)."""
    from recbole_selfattn import cli

    options, rest = dict(_OPTIONS), []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if key.startswith("--") and key[2:] in options and sep:
            options[key[2:]] = value
        else:
            rest.append(arg)
    model, dataset, files, overrides = cli.parse_args(rest)
    for name, allowed in (("tool", TOOLS), ("algo", ALGOS)):
        if options[name] not in allowed:
            raise UsageError(f"--{name}={options[name]} is not one of {', '.join(allowed)}.")
    for name, low in (("max_evals", 1), ("early_stop", 1), ("search_seed", 0)):
        try:
            options[name] = int(options[name])
        except ValueError:
            raise UsageError(f"--{name} must be an integer >= {low}; got '{options[name]}'.") from None
        if options[name] < low:
            raise UsageError(f"--{name} must be an integer >= {low}; got {options[name]}.")
    options["output_file"] = options["output_file"] or f"hyper_{model}.result"
    return model, dataset, files, overrides, options


def search(model, dataset, config_files=None, overrides=(), params_file=None, tool="hyperopt", algo="exhaustive",
           max_evals=100, early_stop=10, search_seed=2020, output_file=None, saved=True):
    """Search ``params_file``'s space for ``model`` on ``dataset`` and write
    ``output_file``; returns ``(params2result, best_params_str)``."""
    from recbole_selfattn.config import Config

    overrides = list(overrides)
    if params_file is None:
        params_file = default_params_file(model)
        if not params_file.is_file():
            raise UsageError(
                f"No hyper-parameter file ships for {model}. Pass --params_file=FILE with lines like "
                "'learning_rate choice [0.001,0.01]'."
            )
    params = read_params_file(params_file)
    config = Config(model, dataset, config_files, None, cmd_args=overrides)
    check_params(params, config, overrides, algo)
    config_files = [os.path.abspath(f) for f in config_files or []] or None
    objective = Objective(model, dataset, overrides, saved=saved)
    output_file = output_file or f"hyper_{model}.result"
    if tool == "ray":
        return ray_search(objective, params, config_files, output_file, algo, max_evals, search_seed,
                          config["valid_metric_bigger"], config["valid_metric"].lower(),
                          use_gpu=config["device"].type == "cuda")
    return hyperopt_search(objective, params, config_files, output_file, algo, max_evals, early_stop, search_seed)


def main(argv=None):
    """Entry point of ``run_hyper.py``; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        from recbole_selfattn.cli import DEFAULT_DATASET, DEFAULT_MODEL

        print(USAGE.format(model=DEFAULT_MODEL, dataset=DEFAULT_DATASET, install=INSTALL_HINT), end="")
        return 0
    start = time.perf_counter()
    try:
        model, dataset, files, overrides, options = parse_args(argv)
        params2result, best = search(model, dataset, files or None, overrides, **options)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(params2result)} trials of {model} on {dataset} in {time.perf_counter() - start:.1f} s")
    if best is None:
        print("every trial failed")
    else:
        print(f"best params: {best}")
        print(f"best valid : {dict2str(params2result[best]['best_valid_result'])}")
        print(f"test result: {dict2str(params2result[best]['test_result'])}")
    print(f"all results: {options['output_file']}")
    return 0 if best is not None else 1
