"""``python run_hyper.py`` (or ``python -m recbole_selfattn.hyper``): the
search's command line, on the shared parser and ``main`` wrapper of
:mod:`recbole_selfattn.cli`."""

import time

from recbole.utils import dict2str

from recbole_selfattn.cli.args import DEFAULT_DATASET, DEFAULT_MODEL
from recbole_selfattn.cli.args import parse_args as parse_command_line
from recbole_selfattn.cli.main import command
from recbole_selfattn.errors import UsageError
from recbole_selfattn.hyper.search import ALGOS, TOOLS, search
from recbole_selfattn.hyper.trials import INSTALL_HINT

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


def usage():
    """The ``--help`` text."""
    return USAGE.format(model=DEFAULT_MODEL, dataset=DEFAULT_DATASET, install=INSTALL_HINT)


def parse_args(argv):
    """Split ``argv`` into RecBole's (model, dataset, config files,
    ``--key=value`` overrides) and the search options, checked and converted."""
    options, run = parse_command_line(argv, _OPTIONS)
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
    options["output_file"] = options["output_file"] or f"hyper_{run.model}.result"
    return run.model, run.dataset, run.config_files, run.overrides, options


def _search(argv):
    start = time.perf_counter()
    model, dataset, files, overrides, options = parse_args(argv)
    params2result, best = search(model, dataset, files or None, overrides, **options)
    print(f"{len(params2result)} trials of {model} on {dataset} in {time.perf_counter() - start:.1f} s")
    if best is None:
        print("every trial failed")
    else:
        print(f"best params: {best}")
        print(f"best valid : {dict2str(params2result[best]['best_valid_result'])}")
        print(f"test result: {dict2str(params2result[best]['test_result'])}")
    print(f"all results: {options['output_file']}")
    return 0 if best is not None else 1


def main(argv=None):
    """Entry point of ``run_hyper.py``; returns the process exit status."""
    return command(_search, usage, argv)
