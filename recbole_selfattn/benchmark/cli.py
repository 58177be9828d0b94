"""The benchmark's command line: ``python -m recbole_selfattn.benchmark --help``
(also ``python run.py --benchmark ...``).

:func:`main` hands a parsed :class:`Args` to one of three roles: the
launcher (:mod:`~recbole_selfattn.benchmark.launcher`), a worker running one
(model, seed) (:mod:`~recbole_selfattn.benchmark.worker`, internal), or the
report alone (``--report-only``, :mod:`~recbole_selfattn.benchmark.report`,
which imports no model code).
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from recbole_selfattn.cli.args import parse_args as parse_command_line
from recbole_selfattn.cli.args import split_list
from recbole_selfattn.cli.main import command
from recbole_selfattn.errors import UsageError

DEFAULT_MODELS = ("AttRec", "MTAW", "MIND", "SASRec", "Caser", "GRU4Rec")
DEFAULT_DATASET = "ml-100k"
FIRST_SEED = 2020

USAGE = f"""\
usage: python -m recbole_selfattn.benchmark [--models=A,B,...] [--dataset=NAME] [--seeds=N | --seeds=S1,S2,...]
                                            [--config_files=FILES] [--model_configs=DIR] [--output=DIR]
                                            [--jobs=N] [--timeout=SECONDS] [--variants=SPEC] [--KEY=VALUE ...]
                                            [--report-only]

Train and test every model with every seed, each run in its own process, and
write a leaderboard (results.md/.csv/.json, metrics.png, valid_curves.png).

options:
  --models=A,B,...      models, comma-separated (default: {",".join(DEFAULT_MODELS)});
                        an unknown name becomes a FAILED row, the others still run
  --dataset=NAME        dataset under data_path (default: {DEFAULT_DATASET}); checked before any run
  --seeds=N             N seeds: {FIRST_SEED}, {FIRST_SEED + 1}, ... (default: 3)
  --seeds=S1,S2,...     these seeds (one explicit seed: --seeds=7,)
  --config_files=FILES  shared protocol YAML files, space- or comma-separated
  --model_configs=DIR   per-model settings: DIR/<Model>.yaml, where present, is
                        layered after the shared files for that model's runs
  --output=DIR          results folder (default: results/<dataset>)
  --jobs=N              runs at a time, each its own process (default 1) with
                        cores/N torch threads (OMP_NUM_THREADS, when set, wins)
  --timeout=SECONDS     stop a run after this many seconds; it becomes a FAILED seed
                        that the next run of the command continues
  --variants=SPEC       a study of ONE model: each ';'-separated variant is a row
                        with its comma-separated overrides, beside the model's
                        default row, e.g. --models=AttRec --variants="omega=0;T=1,L=10"
                        gives rows AttRec, AttRec[omega=0], AttRec[T=1,L=10]; the
                        table shows validation metrics for every row and test
                        metrics for the row chosen on validation only; a study
                        grows when re-run with the earlier variants and new ones
  --KEY=VALUE           any RecBole/model config override, applied to every run
                        (e.g. --epochs=20 --gpu_id=0); --seed is set per run
  --report-only         only regenerate the tables and plots from DIR's run files
  -h, --help            show this message

Re-running the same command skips the runs already done (ok), continues every
unfinished run from its last completed epoch (a run killed anywhere, or out of
--timeout, resumes exactly where it stopped) and retries the failed ones; a run
whose worker is still alive (another launcher) is left to it. Each row of
results.md is mean ± sample std over the seeds, with a paired significance
test against the best RecBole baseline and the training time; the per-run
files are in DIR/runs, DIR/per_user, DIR/configs (with the command re-running
a row alone), DIR/logs and DIR/checkpoints. Exit status: 0 when every run succeeded, 1 when some
failed, 2 on a usage error (bad option, missing dataset or config file).
"""


@dataclass
class Args:
    models: list = field(default_factory=lambda: list(DEFAULT_MODELS))
    dataset: str = DEFAULT_DATASET
    seeds: list = field(default_factory=lambda: list(range(FIRST_SEED, FIRST_SEED + 3)))
    config_files: list = field(default_factory=list)
    model_configs: str = None
    overrides: list = field(default_factory=list)
    output: str = None
    jobs: int = 1
    timeout: float = None
    report_only: bool = False
    variants: dict = field(default_factory=dict)  # row label -> its extra overrides
    worker: bool = False  # internal: run one (model, seed) of the benchmark in --output
    model: str = None  # worker only
    seed: int = None  # worker only


def parse_seeds(text):
    """``"3"`` -> ``[2020, 2021, 2022]``; ``"1,2,3"`` or ``"7,"`` -> those seeds."""
    parts = [p for p in text.replace(" ", ",").split(",") if p]
    hint = f"use --seeds=N for N seeds from {FIRST_SEED}, or a list such as --seeds=1,2,3"
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--seeds={text} is not a count or a list of integers: {hint}.") from None
    if not values:
        raise UsageError(f"--seeds is empty: {hint}.")
    if "," not in text and " " not in text.strip():
        if values[0] < 1:
            raise UsageError(f"--seeds={text}: the number of seeds must be at least 1 ({hint}).")
        return list(range(FIRST_SEED, FIRST_SEED + values[0]))
    if any(v < 0 for v in values) or len(set(values)) != len(values):
        raise UsageError(f"--seeds={text}: seeds must be distinct integers >= 0 ({hint}).")
    return values


def _parse_timeout(text):
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is None or not seconds > 0 or seconds == float("inf"):
        raise UsageError(f"--timeout={text}: give the seconds allowed per run, a number > 0.")
    return seconds


OPTIONS = {  # the benchmark's own options (cli.args: None takes a value, False is a flag)
    "models": None, "seeds": None, "model_configs": None, "output": None, "jobs": None, "timeout": None,
    "variants": None, "seed": None, "report-only": False, "report_only": False,
    "worker": False,  # internal: run one (model, seed) of the benchmark in --output
}


def parse_args(argv):
    """The command line as :class:`Args`, through the one parser of every command
    (:func:`recbole_selfattn.cli.args.parse_args`); a ``--key=value`` that is not
    one of the benchmark's options is a config override for every run."""
    options, run = parse_command_line(argv, OPTIONS)
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and not value and (key[2:] in OPTIONS or key in ("--dataset", "--config_files")):
            raise UsageError(f"{key} needs a value, e.g. {key}=... (run with --help for usage).")
    model_given = any(a.startswith("--model=") for a in argv)
    args = Args(dataset=run.dataset, config_files=run.config_files, overrides=run.overrides,
                worker=options["worker"], report_only=options["report-only"] or options["report_only"])
    if args.worker:
        args.model = run.model if model_given else None
        args.seed = None if options["seed"] is None else int(options["seed"])
    elif model_given or options["seed"] is not None:
        key = "--model" if model_given else "--seed"
        raise UsageError(f"{key} is set per run by the benchmark: use --{key[2:]}s instead.")
    if options["models"] is not None:
        args.models = list(dict.fromkeys(split_list(options["models"])))
        if not args.models:
            raise UsageError("--models is empty: name at least one model, e.g. --models=SASRec,AttRec.")
    if options["seeds"] is not None:
        args.seeds = parse_seeds(options["seeds"])
    if options["model_configs"] is not None:
        if not Path(options["model_configs"]).is_dir():
            raise UsageError(f"--model_configs={options['model_configs']} is not a folder: "
                             "give the folder holding <Model>.yaml files.")
        args.model_configs = options["model_configs"]
    if options["jobs"] is not None:
        if not options["jobs"].isdigit() or int(options["jobs"]) < 1:
            raise UsageError(f"--jobs={options['jobs']}: give the number of runs at a time, an integer >= 1.")
        args.jobs = int(options["jobs"])
    if options["timeout"] is not None:
        args.timeout = _parse_timeout(options["timeout"])
    if options["variants"] is not None:
        args.variants = parse_variants(options["variants"])
    if args.variants and not args.worker:
        if len(args.models) != 1:
            raise UsageError(f"--variants studies one model, but --models names {len(args.models)}: "
                             "give one, e.g. --models=AttRec --variants=\"omega=0;omega=0.4\".")
        model = args.models[0]
        args.variants = {f"{model}[{label}]": overrides for label, overrides in args.variants.items()}
        args.models = [model, *args.variants]
    args.output = options["output"] or os.path.join("results", args.dataset)
    return args


def parse_variants(text):
    """``"omega=0;T=1,L=10"`` -> ``{"omega=0": ["--omega=0"], "T=1,L=10": ["--T=1", "--L=10"]}``."""
    variants = {}
    for variant in (v.strip() for v in text.split(";")):
        pairs = [p.strip() for p in variant.split(",") if p.strip()]
        if not pairs or any("=" not in p or p.startswith(("=", "-")) for p in pairs):
            raise UsageError(f"--variants={text}: each ';'-separated variant is KEY=VALUE overrides joined by ',', "
                             "e.g. --variants=\"omega=0;T=1,L=10\".")
        variants[",".join(pairs)] = [f"--{p}" for p in pairs]
    return variants


def _main(argv):
    args = parse_args(argv)
    if args.worker:
        from recbole_selfattn.benchmark.worker import work

        return work(args)
    if args.report_only:
        from recbole_selfattn.benchmark.report import write_report

        write_report(args.output)
        print(f"written: {Path(args.output) / 'results.md'}, results.csv, results.json, metrics.png, valid_curves.png")
        return 0
    from recbole_selfattn.benchmark.launcher import benchmark

    return benchmark(args, argv)


def main(argv=None):
    """Entry point; returns the exit status (see ``--help``)."""
    return command(_main, USAGE, argv)
