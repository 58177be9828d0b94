"""Command line, RecBole style: ``python run.py --model=AttRec --dataset=ml-100k``.

Every ``--key=value`` other than the few below is a RecBole config override,
exactly as in RecBole's ``run_recbole.py``. ``run.py`` and the
``recbole-selfattn`` console script both call :func:`main`.
"""

import os
import sys
import warnings

from recbole_selfattn.errors import NonFiniteLossError, UsageError

DEFAULT_MODEL = "AttRec"
DEFAULT_DATASET = "ml-100k"

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
            model YAML > protocol (properties/overall.yaml) > RecBole defaults

plugin models:           {plugin}
RecBole sequential models: {builtin}
"""


def usage():
    import textwrap

    from recbole_selfattn.utils import sequential_model_names

    plugin, builtin = sequential_model_names()
    indent = " " * len("RecBole sequential models: ")
    wrapped = textwrap.fill(", ".join(builtin), width=78, initial_indent=indent, subsequent_indent=indent).lstrip()
    return USAGE.format(model=DEFAULT_MODEL, dataset=DEFAULT_DATASET, plugin=", ".join(plugin), builtin=wrapped)


def parse_args(argv):
    """Split ``argv`` into (model, dataset, config files, --key=value overrides).

    Bare ``*.yaml`` arguments count as config files, so the unquoted form
    ``--config_files=a.yaml b.yaml`` works too."""
    model, dataset, files, overrides = DEFAULT_MODEL, DEFAULT_DATASET, [], []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key == "--model":
            model = value
        elif key == "--dataset":
            dataset = value
        elif key == "--config_files":
            files += [f for f in value.replace(",", " ").split() if f]
        elif arg.endswith((".yaml", ".yml")) and not arg.startswith("--"):
            files.append(arg)
        elif arg.startswith("--") and "=" in arg:
            overrides.append(arg)
        else:
            raise UsageError(f"Unrecognised argument '{arg}': options take the form --key=value. Run with --help for usage.")
    return model, dataset, files, overrides


def main(argv=None):
    """Entry point; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # RecBole 1.2.1 triggers pandas/torch deprecation warnings on every run;
    # they are noise to a user (spawned DDP processes inherit the setting).
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if "--benchmark" in argv:
        from recbole_selfattn import benchmark

        return benchmark.main([a for a in argv if a != "--benchmark"])
    if any(a in ("-h", "--help") for a in argv):
        print(usage())
        return 0
    try:
        model, dataset, files, overrides = parse_args(argv)
        from recbole_selfattn.quick_start import run

        result = run(model, dataset, config_file_list=files or None, cmd_args=overrides)
    except (UsageError, NonFiniteLossError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from recbole_selfattn.output import metrics_table

    print(f"{result['config']['model']} on {result['config']['dataset']}")
    print(metrics_table(result["best_valid_result"], result["test_result"]))
    return 0


def main_exit():
    """Console script ``recbole-selfattn``."""
    sys.exit(main())


if __name__ == "__main__":
    main_exit()
