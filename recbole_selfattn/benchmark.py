"""Leaderboard benchmark: every (model, seed) in its own process, then tables and plots.

    python -m recbole_selfattn.benchmark --models=AttRec,MTAW,MIND,SASRec,Caser,GRU4Rec \\
        --dataset=ml-1m --seeds=3 --config_files=protocol.yaml --output=results/ml-1m

Each run trains and tests through :func:`recbole_selfattn.quick_start.run`
(its model's property file, the shared config files, the ``--KEY=VALUE``
overrides and ``seed``) in a fresh ``python -m recbole_selfattn.benchmark
--worker`` process, so a crash, a NaN loss or a timeout in one run does not
stop the others, and peak memory is measured per run. The output folder holds

* ``benchmark.json``: dataset, config files (with their sha256), overrides,
  models and seeds of the benchmark;
* ``runs/<model>_seed<seed>.json``: one run's test and validation metrics,
  seconds per epoch, wall time, peak memory, parameter count, validation
  curve, and its status (``ok``, or ``failed`` with the error's last lines);
* ``configs/<model>_seed<seed>.yaml``: the run's final config and the command
  that re-runs that run alone with ``run.py``;
* ``logs/<model>_seed<seed>.log``: the run's output;
* ``results.md``, ``results.csv``, ``results.json``, ``metrics.png``,
  ``valid_curves.png``: generated from the run files by
  :mod:`recbole_selfattn.report` (``--report-only`` regenerates them).

Running the same command again skips the runs whose file says ``ok`` and
retries the others. A folder belongs to one dataset, set of config files and
overrides: reusing it with other settings is refused, so a table never mixes
protocols.
"""

import hashlib
import numbers
import os
import platform
import resource
import shlex
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from recbole_selfattn import report
from recbole_selfattn.cli.main import command as command_line
from recbole_selfattn.cli.main import exit_with
from recbole_selfattn.errors import UsageError

DEFAULT_MODELS = ("AttRec", "MTAW", "MIND", "SASRec", "Caser", "GRU4Rec")
DEFAULT_DATASET = "ml-100k"
FIRST_SEED = 2020
ERROR_LINES = 15  # lines of a failed run's traceback (or output) kept in its run file

USAGE = f"""\
usage: python -m recbole_selfattn.benchmark [--models=A,B,...] [--dataset=NAME] [--seeds=N | --seeds=S1,S2,...]
                                            [--config_files=FILES] [--model_configs=DIR] [--output=DIR]
                                            [--jobs=N] [--timeout=SECONDS] [--KEY=VALUE ...] [--report-only]

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
  --jobs=N              runs at a time, each its own process (default 1)
  --timeout=SECONDS     stop a run after this many seconds; it becomes a FAILED seed
  --KEY=VALUE           any RecBole/model config override, applied to every run
                        (e.g. --epochs=20 --gpu_id=0); --seed is set per run
  --report-only         only regenerate the tables and plots from DIR's run files
  -h, --help            show this message

Re-running the same command skips the runs already done (ok) and retries the
failed ones. Each row of results.md is mean ± sample std over the seeds; the
per-run files are in DIR/runs, DIR/configs (with the command re-running a row
alone) and DIR/logs. Exit status: 0 when every run succeeded, 1 when some
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


def _split_list(value):
    return [item for item in value.replace(",", " ").split() if item]


def parse_args(argv):
    """The command line as :class:`Args`; a ``--key=value`` that is not one of the
    benchmark's options is a config override for every run."""
    args = Args()
    worker = "--worker" in argv
    for arg in argv:
        key, eq, value = arg.partition("=")
        options = ("--models", "--dataset", "--seeds", "--config_files", "--model_configs", "--output", "--jobs", "--timeout")
        if key in options and not value:
            raise UsageError(f"{key} needs a value, e.g. {key}=... (run with --help for usage).")
        if arg == "--worker":
            args.worker = True
        elif arg in ("--report-only", "--report_only"):
            args.report_only = True
        elif key == "--models" and eq:
            args.models = list(dict.fromkeys(_split_list(value)))
            if not args.models:
                raise UsageError("--models is empty: name at least one model, e.g. --models=SASRec,AttRec.")
        elif key == "--dataset" and eq:
            args.dataset = value
        elif key == "--seeds" and eq:
            args.seeds = parse_seeds(value)
        elif key == "--config_files" and eq:
            args.config_files += _split_list(value)
        elif arg.endswith((".yaml", ".yml")) and not arg.startswith("--"):
            args.config_files.append(arg)
        elif key == "--model_configs" and eq:
            if not Path(value).is_dir():
                raise UsageError(f"--model_configs={value} is not a folder: give the folder holding <Model>.yaml files.")
            args.model_configs = value
        elif key == "--output" and eq:
            args.output = value
        elif key == "--jobs" and eq:
            if not value.isdigit() or int(value) < 1:
                raise UsageError(f"--jobs={value}: give the number of runs at a time, an integer >= 1.")
            args.jobs = int(value)
        elif key == "--timeout" and eq:
            args.timeout = _parse_timeout(value)
        elif worker and key in ("--model", "--seed") and eq:
            setattr(args, key[2:], value if key == "--model" else int(value))
        elif key in ("--model", "--seed"):
            raise UsageError(f"{key} is set per run by the benchmark: use --{key[2:]}s instead.")
        elif arg.startswith("--") and eq and len(key) > 2:
            args.overrides.append(arg)
        else:
            raise UsageError(f"Unrecognised argument '{arg}': options take the form --key=value. Run with --help for usage.")
    args.output = args.output or os.path.join("results", args.dataset)
    return args


def rerun_command(model, dataset, config_files, overrides, seed, cwd):
    """The shell command that re-runs one benchmark run alone with ``run.py``
    (or the ``recbole-selfattn`` console script where there is no checkout)."""
    run_py = Path(__file__).resolve().parents[1] / "run.py"
    program = ["python", str(run_py)] if run_py.is_file() else ["recbole-selfattn"]
    args = [*program, f"--model={model}", f"--dataset={dataset}"]
    if config_files:
        args.append(f"--config_files={','.join(config_files)}")
    args += [*overrides, f"--seed={seed}"]
    return f"cd {shlex.quote(str(cwd))} && {shlex.join(args)}"


_SKIP = object()


def plain(value):
    """``value`` as YAML/JSON-safe builtins, or ``_SKIP`` when it is not plain data
    (a device, an enum, a class)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        items = [plain(v) for v in value]
        return _SKIP if any(v is _SKIP for v in items) else items
    if isinstance(value, dict):
        items = {k: plain(v) for k, v in value.items()}
        if any(not isinstance(k, str) or v is _SKIP for k, v in items.items()):
            return _SKIP
        return items
    return _SKIP


def write_config_yaml(path, config_dict, command, title):
    import yaml

    values = {k: plain(v) for k, v in config_dict.items()}
    kept = {k: v for k, v in values.items() if v is not _SKIP}
    left_out = sorted(k for k, v in values.items() if v is _SKIP)
    text = f"# {title}\n# Re-run this run alone:\n#   {command}\n"
    if left_out:
        text += f"# Left out (not plain values): {', '.join(left_out)}\n"
    text += yaml.safe_dump(kept, sort_keys=True, default_flow_style=None)
    report.write_atomic(path, text)


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_mb():
    """Peak resident memory of this process (or of a child it waited for) in MiB."""
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _paths(output, model, seed):
    name = f"{report.safe_name(model)}_seed{seed}"
    output = Path(output)
    return {
        "run": report.run_path(output, model, seed),
        "config": output / "configs" / f"{name}.yaml",
        "log": output / "logs" / f"{name}.log",
    }


def config_files_for(manifest, model):
    """The shared config files, then the model's own file from --model_configs."""
    own = manifest.get("model_configs", {}).get(model)
    return [f["path"] for f in manifest["config_files"]] + ([own["path"]] if own else [])


def _base_record(manifest, model, seed, output):
    output = Path(output)
    paths = _paths(output, model, seed)
    files = config_files_for(manifest, model)
    return {
        "model": model,
        "dataset": manifest["dataset"],
        "seed": seed,
        "status": "failed",
        "error": None,
        "traceback": None,
        "config_files": files,
        "overrides": manifest["overrides"],
        "command": rerun_command(model, manifest["dataset"], files, manifest["overrides"], seed, os.getcwd()),
        "config_file": str(paths["config"].relative_to(output)),  # paths inside the results folder
        "log_file": str(paths["log"].relative_to(output)),
    }


def _error_summary(exc):
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def worker(args):
    """Run one (model, seed) of the benchmark in ``args.output`` and write its run file."""
    import recbole
    import torch

    from recbole_selfattn import __version__
    from recbole_selfattn.config import Config
    from recbole_selfattn.quick_start import run

    manifest = report.load_manifest(args.output)
    model, seed, dataset = args.model, args.seed, manifest["dataset"]
    files = config_files_for(manifest, model) or None
    cmd_args = [*manifest["overrides"], f"--seed={seed}"]
    paths = _paths(args.output, model, seed)
    record = _base_record(manifest, model, seed, args.output)
    title = f"recbole-selfattn benchmark run: {model} on {dataset}, seed {seed}"
    record["versions"] = {"python": platform.python_version(), "torch": torch.__version__,
                          "recbole": recbole.__version__, "recbole-selfattn": __version__}
    record["cpu"] = cpu_name()
    try:
        config = Config(model, dataset, files, None, cmd_args=cmd_args)
        write_config_yaml(paths["config"], config.final_config_dict, record["command"], title)
        result = run(model, dataset, files, None, saved=True, cmd_args=cmd_args)
        final = getattr(result["config"], "final_config_dict", result["config"])
        write_config_yaml(paths["config"], final, record["command"], title)
        epoch_seconds = [float(s) for s in result["epoch_seconds"]]
        record.update(
            status="ok",
            valid_metric=final["valid_metric"],
            test_result={k: float(v) for k, v in result["test_result"].items()},
            best_valid_result={k: float(v) for k, v in result["best_valid_result"].items()},
            best_valid_score=None if result["best_valid_score"] is None else float(result["best_valid_score"]),
            valid_curve=[float(v) for v in result["valid_curve"]],
            eval_step=final["eval_step"],
            best_epoch=result["best_epoch"],
            epoch_seconds=epoch_seconds,
            epochs_trained=len(epoch_seconds),
            seconds_per_epoch=sum(epoch_seconds) / len(epoch_seconds) if epoch_seconds else None,
            wall_seconds=float(result["wall_seconds"]),
            num_params=int(result["num_params"]),
            model_file=result["model_file"],
            device=str(final["device"]),
        )
    except Exception as e:  # any failure of this run is recorded, not raised: the others go on
        record["error"] = _error_summary(e)
        record["traceback"] = traceback.format_exc().rstrip().splitlines()[-ERROR_LINES:]
        traceback.print_exc()
    record["peak_rss_mb"] = peak_rss_mb()
    cuda_used = torch.cuda.is_available() and torch.cuda.is_initialized()
    record["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20 if cuda_used else None
    record["gpu"] = torch.cuda.get_device_name() if cuda_used else None
    record["finished_at"] = _now()
    report.write_json(paths["run"], record)
    return 0 if record["status"] == "ok" else 1


def launch(args, manifest, model, seed):
    """Run one (model, seed) in a worker process; returns its run record."""
    paths = _paths(args.output, model, seed)
    paths["run"].unlink(missing_ok=True)  # a failed earlier attempt must not pass for this one
    paths["log"].parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "recbole_selfattn.benchmark", "--worker", f"--output={args.output}",
               f"--model={model}", f"--seed={seed}"]
    start = time.perf_counter()
    timed_out = False
    with open(paths["log"], "w") as log:
        # Its own session, so a timeout also ends the processes the run started (nproc > 1).
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = process.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(process.pid, signal.SIGKILL)
            returncode = process.wait()
        except BaseException:  # Ctrl-C: end the run before leaving
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    seconds = time.perf_counter() - start
    record = report.load_run(args.output, model, seed)
    if record is None or timed_out:  # killed, crashed, or out of time: the worker wrote no verdict
        record = _base_record(manifest, model, seed, args.output)
        if timed_out:
            record["error"] = f"timed out after {args.timeout:g} s (--timeout)"
        elif returncode < 0:
            record["error"] = f"the run's process was killed by signal {signal.Signals(-returncode).name}"
        else:
            record["error"] = f"the run's process exited with status {returncode} without a result"
        record["traceback"] = paths["log"].read_text(errors="replace").rstrip().splitlines()[-ERROR_LINES:]
        record["finished_at"] = _now()
    record["process_seconds"] = seconds
    report.write_json(paths["run"], record)
    return record


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check_models_and_dataset(args):
    """Map each model name to ``None`` (known) or the error of an unknown name,
    and fail before any run when the dataset or a config file is missing."""
    from recbole_selfattn.config import Config
    from recbole_selfattn.data.atomic import check_dataset_files
    from recbole_selfattn.data.download import ensure_dataset
    from recbole_selfattn.errors import UnknownModelError
    from recbole_selfattn.utils import get_model

    unknown = {}
    for model in args.models:
        try:
            get_model(model)
            unknown[model] = None
        except UnknownModelError as e:
            unknown[model] = _error_summary(e)
    probe = next((m for m in args.models if unknown[m] is None), "SASRec")
    config = Config(probe, args.dataset, args.config_files or None, None, cmd_args=args.overrides)
    ensure_dataset(config)
    check_dataset_files(config)
    return unknown


def _manifest(args, argv):
    settings = {
        "dataset": args.dataset,
        "config_files": [{"path": str(Path(f).resolve()), "sha256": _sha256(f)} for f in args.config_files],
        "overrides": list(args.overrides),
        "model_configs": {
            p.stem: {"path": str(p.resolve()), "sha256": _sha256(p)} for p in sorted(Path(args.model_configs).glob("*.yaml"))
        }
        if args.model_configs
        else {},
    }
    path = Path(args.output) / report.MANIFEST
    old = report.read_json(path) if path.is_file() else None
    if path.is_file() and old is None:
        print(f"{path} was unreadable (truncated or corrupt): rewriting it; runs whose file says ok are kept.")
    if old is not None:
        changed = [k for k in settings if old.get(k) != settings[k]]
        if changed:
            raise UsageError(
                f"{args.output} holds runs made with other settings ({', '.join(changed)} differ: "
                f"{ {k: old.get(k) for k in changed} } there, { {k: settings[k] for k in changed} } now). "
                "Use another --output, or delete that folder to start over."
            )
    manifest = {
        **settings,
        "models": args.models,
        "seeds": args.seeds,
        "timeout": args.timeout,
        "command": "python -m recbole_selfattn.benchmark " + shlex.join(argv),
        "cwd": os.getcwd(),
        "updated_at": _now(),
    }
    report.write_json(path, manifest)
    return manifest


def _outcome(args, record):
    if record["status"] == "ok":
        key = record["valid_metric"].lower()
        return f"done in {record['process_seconds']:.0f}s {key}={record['test_result'][key]:.4f}"
    log = f" (log: {Path(args.output) / record['log_file']})" if record["log_file"] else ""
    return f"FAILED: {record['error']}{log}"


def benchmark(args, argv):
    from concurrent.futures import ThreadPoolExecutor

    unknown = _check_models_and_dataset(args)
    manifest = _manifest(args, argv)
    runs = [(model, seed) for model in args.models for seed in args.seeds]

    def one(index, model, seed):
        head = f"[{index}/{len(runs)}] {model} seed={seed} ..."
        previous = report.load_run(args.output, model, seed)
        if previous and previous["status"] == "ok":
            print(f"{head} skipped (done)", flush=True)
            return True
        if unknown[model]:
            record = {**_base_record(manifest, model, seed, args.output), "error": unknown[model],
                      "config_file": None, "log_file": None, "finished_at": _now()}
            report.write_json(report.run_path(args.output, model, seed), record)
        else:
            record = launch(args, manifest, model, seed)
        print(f"{head} {_outcome(args, record)}", flush=True)
        return record["status"] == "ok"

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        failures = sum(not ok for ok in pool.map(lambda job: one(*job), [(i, m, s) for i, (m, s) in enumerate(runs, 1)]))
    report.write_report(args.output)
    results = Path(args.output) / "results.md"
    print(f"\n{results.read_text()}\nwritten: {results}, results.csv, results.json, metrics.png, valid_curves.png")
    return 1 if failures else 0


def _main(argv):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    if args.report_only:
        report.write_report(args.output)
        print(f"written: {Path(args.output) / 'results.md'}, results.csv, results.json, metrics.png, valid_curves.png")
        return 0
    return benchmark(args, argv)


def main(argv=None):
    """Entry point; returns the exit status (see ``--help``)."""
    return command_line(_main, USAGE, argv)


if __name__ == "__main__":
    exit_with(main)
