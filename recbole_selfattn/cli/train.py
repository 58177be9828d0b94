"""``python run.py`` (and the ``recbole-selfattn`` console script): train,
validate and test one model, RecBole style::

    python run.py --model=AttRec --dataset=ml-100k --epochs=5

Every ``--key=value`` other than ``--model``, ``--dataset``,
``--config_files`` is a RecBole config override, exactly as in RecBole's
``run_recbole.py``; ``--benchmark`` hands the command line to the
leaderboard (:mod:`recbole_selfattn.benchmark`).
"""

import sys
import textwrap

from recbole_selfattn.cli.args import DEFAULT_DATASET, DEFAULT_MODEL
from recbole_selfattn.cli.args import parse_args as parse_command_line
from recbole_selfattn.cli.main import command, exit_with

USAGE = """\
usage: python run.py [--model=NAME] [--dataset=NAME] [--config_files="a.yaml b.yaml"] [--KEY=VALUE ...]

Train, validate (early stopping) and test a sequential recommender with RecBole.
Defaults: --model={model} --dataset={dataset} (bundled with RecBole, no download).

options:
  --model=NAME          a plugin model or any RecBole built-in (see below)
  --dataset=NAME        a dataset folder under data_path holding NAME.inter
  --config_files=FILES  YAML config files, space- or comma-separated; later win
  --KEY=VALUE           any RecBole/model config key, e.g. --epochs=5
                        --learning_rate=0.001 --embedding_size=64 --gpu_id=
  --nproc=N             distributed data-parallel training on N processes
  --benchmark           leaderboard mode: many models and seeds, tables and plots
                        (python run.py --benchmark --help for its options)
  -h, --help            show this message

precedence: command line > config dict > config files > dataset YAML >
            model YAML > protocol (recbole_selfattn/properties/overall.yaml) > RecBole defaults

plugin models:           {plugin}
RecBole sequential models: {builtin}
"""


def usage():
    """The ``--help`` text, with the model names (read without importing a model)."""
    from recbole_selfattn.utils import sequential_model_names

    plugin, builtin = sequential_model_names()
    indent = " " * len("RecBole sequential models: ")
    wrapped = textwrap.fill(", ".join(builtin), width=78, initial_indent=indent, subsequent_indent=indent).lstrip()
    return USAGE.format(model=DEFAULT_MODEL, dataset=DEFAULT_DATASET, plugin=", ".join(plugin), builtin=wrapped)


def parse_args(argv):
    """Split ``argv`` into (model, dataset, config files, --key=value overrides).

    Bare ``*.yaml`` arguments count as config files, so the unquoted form
    ``--config_files=a.yaml b.yaml`` works too."""
    _, run = parse_command_line(argv)
    return run.model, run.dataset, run.config_files, run.overrides


def _train(argv):
    from recbole_selfattn.output import metrics_table

    from recbole_selfattn.quick_start import run

    model, dataset, files, overrides = parse_args(argv)
    result = run(model, dataset, config_file_list=files or None, cmd_args=overrides)
    print(f"{result['config']['model']} on {result['config']['dataset']}")
    print(metrics_table(result["best_valid_result"], result["test_result"]))
    return 0


def main(argv=None):
    """Entry point; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--benchmark" in argv:
        from recbole_selfattn import benchmark

        return benchmark.main([a for a in argv if a != "--benchmark"])
    return command(_train, usage, argv)


def main_exit():
    """Console script ``recbole-selfattn``."""
    exit_with(main)


if __name__ == "__main__":
    main_exit()
