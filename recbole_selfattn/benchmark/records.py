"""The results folder's files, in one place: where each lives, what a run
record holds, and how it is read back.

A benchmark folder holds

* ``benchmark.json`` (:data:`MANIFEST`): dataset, config files (paths
  relative to the folder the benchmark runs from, with their sha256),
  overrides, models and seeds;
* ``runs/<model>_seed<seed>.json``: one run's record (:func:`base_record`,
  completed by :func:`result_fields`), status ``ok`` or ``failed``;
* ``per_user/<model>_seed<seed>.json``: the run's NDCG@k per test user,
  keyed by user token, for paired significance tests;
* ``configs/<model>_seed<seed>.yaml``, ``logs/<model>_seed<seed>.log``;
* ``checkpoints/``: each run's best model and, while the run is unfinished,
  its epoch-end resume checkpoint; ``runs/<model>_seed<seed>.lock``, held by
  the live worker of a run.

No file holds an absolute machine path: paths are relative to the results
folder or to the folder the benchmark runs from, and :func:`portable_text`
rewrites the paths that logs and tracebacks print.
"""

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from recbole_selfattn.errors import UsageError
from recbole_selfattn.safe_write import write_text

MANIFEST = "benchmark.json"


def safe_name(model):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in model)


@dataclass(frozen=True)
class RunPaths:
    """The files of one (model, seed) run inside the results folder ``output``."""

    output: Path
    model: str
    seed: int

    @property
    def name(self):
        return f"{safe_name(self.model)}_seed{self.seed}"

    @property
    def run(self):
        return self.output / "runs" / f"{self.name}.json"

    @property
    def lock(self):
        return self.output / "runs" / f"{self.name}.lock"

    @property
    def per_user(self):
        return self.output / "per_user" / f"{self.name}.json"

    @property
    def config(self):
        return self.output / "configs" / f"{self.name}.yaml"

    @property
    def log(self):
        return self.output / "logs" / f"{self.name}.log"

    @property
    def checkpoint_dir(self):
        return self.output / "checkpoints"

    @property
    def resume(self):
        return self.checkpoint_dir / f"{self.name}.resume.pth"

    def inside(self, path):
        """``path`` relative to the results folder (how records name files)."""
        return Path(os.path.relpath(Path(path).resolve(), self.output.resolve())).as_posix()


def run_paths(output, model, seed):
    return RunPaths(Path(output), model, seed)


def metric_label(key):
    """``"ndcg@10"`` -> ``"NDCG@10"``: how tables and plots name a metric."""
    names = {"recall": "Recall", "mrr": "MRR", "ndcg": "NDCG", "hit": "Hit", "precision": "Precision", "map": "MAP"}
    metric, _, k = key.partition("@")
    return f"{names.get(metric, metric)}@{k}" if k else names.get(metric, metric)


def read_json(path):
    """The JSON object in ``path``, or ``None`` when the file is not one
    (truncated, empty, or not an object)."""
    try:
        value = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def write_atomic(path, text):
    """Write ``text`` to ``path`` whole or not at all (:mod:`recbole_selfattn.safe_write`)."""
    write_text(path, text, newline="")


def write_json(path, record):
    write_atomic(path, json.dumps(record, indent=2) + "\n")


def load_manifest(output):
    path = Path(output) / MANIFEST
    if not path.is_file():
        raise UsageError(
            f"{path} does not exist: {output} holds no benchmark. Run the benchmark first "
            "(python -m recbole_selfattn.benchmark --models=... --dataset=... --output=...)."
        )
    manifest = read_json(path)
    if manifest is None:
        raise UsageError(
            f"{path} is not a readable benchmark record (truncated or corrupt), so the models and seeds "
            "of the table are unknown. Re-run the benchmark command that made this folder: it rewrites "
            f"{MANIFEST}, skips the runs already done and redoes unreadable ones."
        )
    missing = [key for key in ("dataset", "models", "seeds", "config_files", "overrides") if key not in manifest]
    if missing:
        raise UsageError(f"{path} lacks {', '.join(missing)}: it was not written by this benchmark; use another --output.")
    return manifest


def load_run(output, model, seed):
    """The run's record, ``None`` when it has not been run, or a ``failed``
    record saying so when its file is unreadable (the benchmark redoes it)."""
    path = run_paths(output, model, seed).run
    if not path.is_file():
        return None
    record = read_json(path)
    if record is None or "status" not in record:
        return {
            "model": model,
            "seed": seed,
            "status": "failed",
            "error": f"run file {path.name} is unreadable (truncated or corrupt); re-run the benchmark to redo it",
        }
    return record


def load_per_user(output, record, metric):
    """``{user token: value}`` of ``metric`` for an ``ok`` run, or ``None``
    when the run saved no per-user file (older benchmarks) or lacks ``metric``."""
    if not record.get("per_user_file"):
        return None
    saved = read_json(Path(output) / record["per_user_file"])
    if saved is None or metric not in saved:
        return None
    return dict(zip(saved["users"], saved[metric]))


def relative(path):
    """``path`` relative to the current folder (the folder the benchmark runs from)."""
    return Path(os.path.relpath(Path(path).resolve(), Path.cwd())).as_posix()


def portable_text(text):
    """``text`` with this machine's absolute paths rewritten: the current
    folder becomes relative, this Python installation ``<python>``."""
    cwd = os.getcwd()
    replacements = [(cwd + os.sep, ""), (cwd, "."), (sys.prefix, "<python>"), (sys.base_prefix, "<python>")]
    package_root = str(Path(__file__).resolve().parents[2])
    replacements.append((package_root, "<recbole-selfattn>"))
    for old, new in replacements:
        if len(old.rstrip(os.sep)) > 1:  # never the root folder itself
            text = text.replace(old, new)
    return text


def rerun_command(model, dataset, config_files, overrides, seed):
    """The command that re-runs one benchmark run alone, from the folder the
    benchmark ran from: ``python run.py ...`` in a checkout, else the
    ``recbole-selfattn`` console script."""
    program = ["python", "run.py"] if Path("run.py").is_file() else ["recbole-selfattn"]
    args = [*program, f"--model={model}", f"--dataset={dataset}"]
    if config_files:
        args.append(f"--config_files={','.join(config_files)}")
    return shlex.join([*args, *overrides, f"--seed={seed}"])


def variant(manifest, row):
    """``(model, overrides)`` of a benchmark row: a study's row ``Model[k=v,...]``
    (``--variants``) is its model under extra overrides; any other row is a model."""
    extra = manifest.get("variants", {}).get(row)
    return (row, []) if extra is None else (row.partition("[")[0], list(extra))


def config_files_for(manifest, model):
    """The shared config files, then the model's own file from --model_configs."""
    own = manifest.get("model_configs", {}).get(model)
    return [f["path"] for f in manifest["config_files"]] + ([own["path"]] if own else [])


def base_record(manifest, model, seed, output):
    """A run record before (or without) a result: ``failed`` until the worker says ``ok``."""
    paths = run_paths(output, model, seed)
    name, extra = variant(manifest, model)
    files = config_files_for(manifest, name)
    overrides = [*manifest["overrides"], *extra]
    return {
        "model": model,
        "dataset": manifest["dataset"],
        "seed": seed,
        "status": "failed",
        "error": None,
        "traceback": None,
        "config_files": files,
        "overrides": overrides,
        "command": rerun_command(name, manifest["dataset"], files, overrides, seed),
        "config_file": paths.inside(paths.config),  # paths inside the results folder
        "log_file": paths.inside(paths.log),
    }


def result_fields(result, final, paths, source):
    """The record fields of a finished run, from :func:`recbole_selfattn.quick_start.run`'s
    result and final config: the one place a run's result is reshaped."""
    epoch_seconds = [float(s) for s in result["epoch_seconds"]]
    elapsed = [float(s) for s in result["elapsed_seconds"]]
    best_epoch = result["best_epoch"]
    return {
        "status": "ok",
        "source": source,
        "valid_metric": final["valid_metric"],
        "test_result": {k: float(v) for k, v in result["test_result"].items()},
        "best_valid_result": {k: float(v) for k, v in result["best_valid_result"].items()},
        "best_valid_score": None if result["best_valid_score"] is None else float(result["best_valid_score"]),
        "valid_curve": [float(v) for v in result["valid_curve"]],
        "eval_step": final["eval_step"],
        "best_epoch": best_epoch,
        "epoch_seconds": epoch_seconds,
        "epochs_trained": len(epoch_seconds),
        "seconds_per_epoch": sum(epoch_seconds) / len(epoch_seconds) if epoch_seconds else None,
        "seconds_to_best": elapsed[best_epoch - 1] if best_epoch and len(elapsed) >= best_epoch else None,
        "train_seconds": elapsed[-1] if elapsed else None,
        "wall_seconds": float(result["wall_seconds"]),
        "num_params": int(result["num_params"]),
        "model_file": paths.inside(result["model_file"]) if result["model_file"] else None,
        "per_user_file": paths.inside(paths.per_user) if result["test_per_user"] else None,
        "device": str(final["device"]),
    }
