"""One (model, seed) of a benchmark, in its own process
(``python -m recbole_selfattn.benchmark --worker``, started by the launcher).

The worker

* holds ``runs/<run>.lock`` (``fcntl.flock``) while it lives, so no second
  worker runs the same run; the kernel drops the lock when the process dies,
  so a killed worker never blocks the next attempt;
* dies with its launcher (``PR_SET_PDEATHSIG`` on Linux, and a thread that
  watches the parent process elsewhere): a killed launcher leaves no orphan;
* trains with an epoch-end resume checkpoint in ``checkpoints/``, so a run
  interrupted anywhere continues from its last completed epoch when the
  benchmark is re-run, and ends exactly as the uninterrupted run would have;
* writes the run's record, per-user test metrics and config dump atomically.
"""

import ctypes
import fcntl
import numbers
import os
import platform
import resource
import signal
import sys
import threading
import time
import traceback
from datetime import datetime, timezone

from recbole_selfattn.benchmark import records

LAUNCHER_ENV = "RECBOLE_SELFATTN_BENCHMARK_LAUNCHER"  # the launcher's pid, given to its workers
RUNNING_ELSEWHERE = 3  # exit status: another live worker holds the run's lock
ERROR_LINES = 15  # lines of a failed run's traceback (or output) kept in its run file
_PR_SET_PDEATHSIG = 1


def now():
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


def lock_run(paths):
    """Take the run's lock for this process's lifetime (the open file is
    returned and must be kept); ``None`` when a live process holds it."""
    paths.lock.parent.mkdir(parents=True, exist_ok=True)
    handle = open(paths.lock, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def holder(paths):
    """The pid of the live worker holding the run's lock, or ``None``."""
    if not paths.lock.is_file():
        return None
    with open(paths.lock) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
    return None


def die_with_launcher():
    """End this process when the launcher that started it ends."""
    launcher = int(os.environ.get(LAUNCHER_ENV, "0"))
    if not launcher:
        return
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch():
        while os.getppid() == launcher:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="watch-launcher", daemon=True).start()


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
    """The run's config as YAML; values that are not plain data are named, not
    written, and machine paths (``data_path``, ``checkpoint_dir``) are relative."""
    import yaml

    values = {k: plain(v) for k, v in config_dict.items()}
    for key in ("data_path", "checkpoint_dir", "epoch_checkpoint"):
        if isinstance(values.get(key), str) and os.path.isabs(values[key]):
            values[key] = records.relative(values[key])
    kept = {k: v for k, v in values.items() if v is not _SKIP}
    left_out = sorted(k for k, v in values.items() if v is _SKIP)
    text = f"# {title}\n# Re-run this run alone, from the folder the benchmark ran from:\n#   {command}\n"
    if left_out:
        text += f"# Left out (not plain values): {', '.join(left_out)}\n"
    text += yaml.safe_dump(kept, sort_keys=True, default_flow_style=None)
    records.write_atomic(path, records.portable_text(text))


def work(args):
    """Run one (model, seed) of the benchmark in ``args.output``; write its run file."""
    die_with_launcher()
    paths = records.run_paths(args.output, args.model, args.seed)
    lock = lock_run(paths)
    if lock is None:
        print(f"{paths.name} is being run by another process (pid in {paths.lock}): left to it.")
        return RUNNING_ELSEWHERE
    with lock:
        return _train(args, paths)


def _train(args, paths):
    import recbole
    import torch

    from recbole_selfattn import __version__
    from recbole_selfattn.config import Config
    from recbole_selfattn.quick_start import run
    from recbole_selfattn.utils import get_model

    manifest = records.load_manifest(args.output)
    seed, dataset = args.seed, manifest["dataset"]
    model, extra = records.variant(manifest, args.model)
    files = records.config_files_for(manifest, model) or None
    slices = [f"--checkpoint_dir={records.relative(paths.checkpoint_dir)}",
              f"--epoch_checkpoint={records.relative(paths.resume)}"]
    cmd_args = [*manifest["overrides"], *extra, f"--seed={seed}", *slices]
    record = records.base_record(manifest, args.model, seed, args.output)
    title = f"recbole-selfattn benchmark run: {args.model} on {dataset}, seed {seed}"
    record["versions"] = {"python": platform.python_version(), "torch": torch.__version__,
                          "recbole": recbole.__version__, "recbole-selfattn": __version__}
    record["cpu"] = cpu_name()
    record["torch_threads"] = torch.get_num_threads()
    try:
        source = "recbole" if get_model(model).__module__.startswith("recbole.") else "plugin"
        config = Config(model, dataset, files, None, cmd_args=cmd_args)
        # the checkpoints keep the run's config: its data folder relative, as the other paths
        cmd_args.append(f"--data_path={records.relative(os.path.dirname(config['data_path']))}")
        write_config_yaml(paths.config, config.final_config_dict, record["command"], title)
        result = run(model, dataset, files, None, saved=True, cmd_args=cmd_args)
        final = getattr(result["config"], "final_config_dict", result["config"])
        write_config_yaml(paths.config, final, record["command"], title)
        if result["test_per_user"]:
            records.write_json(paths.per_user, result["test_per_user"])
        record.update(records.result_fields(result, final, paths, source))
    except Exception as e:  # any failure of this run is recorded, not raised: the others go on
        record["error"] = " ".join(f"{type(e).__name__}: {e}".split())
        record["traceback"] = traceback.format_exc().rstrip().splitlines()[-ERROR_LINES:]
        traceback.print_exc()
    record["peak_rss_mb"] = peak_rss_mb()
    cuda_used = torch.cuda.is_available() and torch.cuda.is_initialized()
    record["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20 if cuda_used else None
    record["gpu"] = torch.cuda.get_device_name() if cuda_used else None
    record["finished_at"] = now()
    record = {k: records.portable_text(v) if isinstance(v, str) else v for k, v in record.items()}
    if record["traceback"]:
        record["traceback"] = [records.portable_text(line) for line in record["traceback"]]
    records.write_json(paths.run, record)
    if record["status"] == "ok":
        paths.resume.unlink(missing_ok=True)  # finished: the best checkpoint is what stays
    return 0 if record["status"] == "ok" else 1
