"""The launcher: checks the benchmark, records its settings and runs every
(model, seed) in a worker process (:mod:`~recbole_selfattn.benchmark.worker`),
``--jobs`` at a time, then writes the tables and plots.

Runs whose record says ``ok`` are skipped; a run whose worker is alive
(another launcher on the same folder) is left to it; every other run is
(re)started, and continues from its epoch-end checkpoint when it has one.
A folder belongs to one dataset, set of config files and overrides (and the
own config file of each model it ran): reusing it with other settings is
refused, so a table never mixes protocols. A study grows by new variants; one
that leaves out an earlier variant is refused.
"""

import hashlib
import os
import shlex
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from recbole_selfattn.benchmark import records
from recbole_selfattn.benchmark.report import write_report
from recbole_selfattn.benchmark.worker import ERROR_LINES, LAUNCHER_ENV, RUNNING_ELSEWHERE, holder, now
from recbole_selfattn.errors import UsageError

# RecBole 1.2.1 prints pandas/torch deprecation warnings on every run: noise in the logs.
WORKER_WARNINGS = "ignore::FutureWarning,ignore::DeprecationWarning"


def worker_threads(jobs):
    """Torch threads per worker: the machine's cores shared by the ``jobs``
    runs at a time. Each worker otherwise takes every core, and ``jobs`` of
    them spin-waiting on each other's cores ran AttRec's ml-1m epoch 10x
    slower (234 s against 22 s alone). ``OMP_NUM_THREADS``, when set, wins."""
    return max(1, (os.cpu_count() or 1) // jobs)


def launch(args, manifest, model, seed):
    """Run one (model, seed) in a worker process; its run record, or ``None``
    when a live worker of another launcher holds the run."""
    paths = records.run_paths(args.output, model, seed)
    if holder(paths) is not None:
        return None
    paths.run.unlink(missing_ok=True)  # a failed earlier attempt must not pass for this one
    paths.log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "recbole_selfattn.benchmark", "--worker", f"--output={args.output}",
               f"--model={model}", f"--seed={seed}"]
    env = {**os.environ, LAUNCHER_ENV: str(os.getpid()), "PYTHONWARNINGS": WORKER_WARNINGS}
    env.setdefault("OMP_NUM_THREADS", str(worker_threads(args.jobs)))
    start = time.perf_counter()
    timed_out = False
    with open(paths.log, "a") as log:
        log.write(f"--- attempt started {now()} ---\n")
        log.flush()
        # Its own session, so a timeout also ends the processes the run started (nproc > 1).
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
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
    log_text = records.portable_text(paths.log.read_text(errors="replace"))
    records.write_atomic(paths.log, log_text)
    if returncode == RUNNING_ELSEWHERE:
        return None
    record = records.load_run(args.output, model, seed)
    if record is None or timed_out:  # killed, crashed, or out of time: the worker wrote no verdict
        record = records.base_record(manifest, model, seed, args.output)
        if timed_out:
            record["error"] = (f"timed out after {args.timeout:g} s (--timeout); "
                               "re-running the benchmark continues it from its last completed epoch")
        elif returncode < 0:
            record["error"] = f"the run's process was killed by signal {signal.Signals(-returncode).name}"
        else:
            record["error"] = f"the run's process exited with status {returncode} without a result"
        record["traceback"] = log_text.rstrip().splitlines()[-ERROR_LINES:]
        record["finished_at"] = now()
    record["process_seconds"] = seconds
    records.write_json(paths.run, record)
    return record


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_models_and_dataset(args):
    """Map each model name to ``None`` (known) or the error of an unknown name,
    and fail before any run when the dataset or a config file is missing."""
    from recbole_selfattn.config import Config
    from recbole_selfattn.data.download import check_dataset
    from recbole_selfattn.errors import UnknownModelError
    from recbole_selfattn.utils import get_model

    unknown = {}
    for model in args.models:
        try:
            get_model(model.partition("[")[0] if model in args.variants else model)
            unknown[model] = None
        except UnknownModelError as e:
            unknown[model] = " ".join(f"{type(e).__name__}: {e}".split())
    probe = next((m for m in args.models if unknown[m] is None), "SASRec")
    config = Config(probe, args.dataset, args.config_files or None, None, cmd_args=args.overrides)
    check_dataset(config)
    return unknown


def _protocol(settings, models):
    """What must not change within a folder for the runs of ``models`` (their
    base names): config files count by content, not by path (a folder may
    move, or be run from elsewhere, between slices), and a model's own config
    file only where that model has runs here."""
    configs = settings.get("model_configs", {})
    return {
        "dataset": settings.get("dataset"),
        "config_files": [f.get("sha256") for f in settings.get("config_files", [])],
        "overrides": settings.get("overrides"),
        "model_configs": {m: configs[m].get("sha256") for m in sorted(models) if m in configs},
    }


def _dropped_variants(old, settings):
    """The rows of an earlier study that ``settings`` leaves out or changes: a
    study may grow by new variants, never lose or alter one it ran."""
    now_ = settings["variants"]
    return [label for label, overrides in old.get("variants", {}).items() if now_.get(label) != overrides]


def write_manifest(args, argv):
    """Record the benchmark's settings in ``benchmark.json``; refuse a folder
    that holds runs made with other settings."""
    def described(path):
        return {"path": records.relative(path), "sha256": _sha256(path)}

    model_configs = sorted(Path(args.model_configs).glob("*.yaml")) if args.model_configs else []
    settings = {
        "dataset": args.dataset,
        "config_files": [described(f) for f in args.config_files],
        "overrides": list(args.overrides),
        "model_configs": {p.stem: described(p) for p in model_configs},
        "variants": args.variants,
    }
    path = Path(args.output) / records.MANIFEST
    old = records.read_json(path) if path.is_file() else None
    if path.is_file() and old is None:
        print(f"{path} was unreadable (truncated or corrupt): rewriting it; runs whose file says ok are kept.")
    if old is not None:
        studied = {m.partition("[")[0] for m in old.get("models", [])}
        there, now_ = _protocol(old, studied), _protocol(settings, studied)
        changed = [k for k in now_ if there.get(k) != now_[k]]
        if changed:
            raise UsageError(
                f"{args.output} holds runs made with other settings ({', '.join(changed)} differ: "
                f"{ {k: there.get(k) for k in changed} } there, { {k: now_[k] for k in changed} } now). "
                "Use another --output, or delete that folder to start over."
            )
        dropped = _dropped_variants(old, settings)
        if dropped:
            raise UsageError(
                f"{args.output} holds a study whose --variants included {'; '.join(dropped)}, which this "
                "command leaves out. A study grows by adding variants: repeat the earlier ones in --variants "
                "and add the new ones after them, or use another --output."
            )
    argv = [records.portable_text(a) for a in argv]
    manifest = {
        **settings,
        "models": args.models,
        "seeds": args.seeds,
        "timeout": args.timeout,
        "command": "python -m recbole_selfattn.benchmark " + shlex.join(argv),
        "updated_at": now(),
    }
    records.write_json(path, manifest)
    return manifest


def _outcome(args, record):
    if record is None:
        return "skipped (running in another process)"
    if record["status"] == "ok":
        key = record["valid_metric"].lower()
        # the validation score only: a study's rows are compared on validation, test is read once
        return f"done in {record['process_seconds']:.0f}s valid {key}={record['best_valid_result'][key]:.4f}"
    log = f" (log: {Path(args.output) / record['log_file']})" if record["log_file"] else ""
    return f"FAILED: {record['error']}{log}"


def benchmark(args, argv):
    """Run every (model, seed) not yet done, then write the report; the exit status."""
    unknown = check_models_and_dataset(args)
    manifest = write_manifest(args, argv)
    runs = [(model, seed) for model in args.models for seed in args.seeds]

    def one(index, model, seed):
        head = f"[{index}/{len(runs)}] {model} seed={seed} ..."
        previous = records.load_run(args.output, model, seed)
        if previous and previous["status"] == "ok":
            print(f"{head} skipped (done)", flush=True)
            return True
        if unknown[model]:
            record = {**records.base_record(manifest, model, seed, args.output), "error": unknown[model],
                      "config_file": None, "log_file": None, "finished_at": now()}
            records.write_json(records.run_paths(args.output, model, seed).run, record)
        else:
            record = launch(args, manifest, model, seed)
        print(f"{head} {_outcome(args, record)}", flush=True)
        return record is not None and record["status"] == "ok"

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        jobs = [(i, m, s) for i, (m, s) in enumerate(runs, 1)]
        failures = sum(not ok for ok in pool.map(lambda job: one(*job), jobs))
    write_report(args.output)
    results = Path(args.output) / "results.md"
    print(f"\n{results.read_text()}\nwritten: {results}, results.csv, results.json, metrics.png, valid_curves.png")
    return 1 if failures else 0
