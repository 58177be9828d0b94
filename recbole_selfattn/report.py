"""Leaderboard tables and plots, generated from a benchmark's run files only.

:mod:`recbole_selfattn.benchmark` writes one ``runs/<model>_seed<seed>.json``
per run and a ``benchmark.json`` naming the models, seeds and settings.
:func:`write_report` reads nothing else and writes, in the same folder:

* ``results.md``: a header (dataset, protocol config files, seeds, overrides,
  date, machine) above a Markdown table, one row per model;
* ``results.csv`` and ``results.json``: the same rows with full precision
  (``results.json`` also keeps every seed's value);
* ``metrics.png``: NDCG@10, Recall@10 and MRR@10 per model, with the seeds'
  standard deviation as error bars;
* ``valid_curves.png``: the validation metric after each evaluation, one line
  per run.

A row's test metrics are the mean and the sample standard deviation
(``ddof=1``) over the seeds whose run succeeded; with one seed there is no
standard deviation (blank) and ``n`` says so. A model with a failed or missing
seed is marked ``FAILED`` (or ``incomplete``) with the reason, and keeps the
statistics of its successful seeds. A run file that is not a JSON record
(e.g. truncated by a crash) counts as a failed run whose note says so; the
benchmark command redoes it. Every file is written whole or not at all
(:mod:`recbole_selfattn.safe_write`), so a crash never leaves a half-written one.
"""

import csv
import io
import json
import platform
import statistics
from datetime import datetime, timezone
from pathlib import Path

from recbole_selfattn.errors import UsageError
from recbole_selfattn.safe_write import write_text

MANIFEST = "benchmark.json"
TABLE_METRICS = ("recall", "mrr", "ndcg", "hit")  # the Markdown table's metrics (all are in the CSV)
PLOT_METRICS = ("ndcg@10", "recall@10", "mrr@10")


def run_path(output, model, seed):
    return Path(output) / "runs" / f"{safe_name(model)}_seed{seed}.json"


def safe_name(model):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in model)


def read_json(path):
    """The JSON object in ``path``, or ``None`` when the file is not one
    (truncated, empty, or not an object)."""
    try:
        value = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def write_atomic(path, text):
    """Write ``text`` to ``path`` whole or not at all (:func:`~recbole_selfattn.safe_write.atomic_open`)."""
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
    return manifest


def load_run(output, model, seed):
    """The run's record, ``None`` when it has not been run, or a ``failed``
    record saying so when its file is unreadable (the benchmark redoes it)."""
    path = run_path(output, model, seed)
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


def summarise(model, seeds, records):
    """One leaderboard row from the model's run records (``None`` = not run)."""
    ok = [r for r in records if r and r["status"] == "ok"]
    failed = [(s, r) for s, r in zip(seeds, records) if r and r["status"] != "ok"]
    missing = [s for s, r in zip(seeds, records) if r is None]
    keys = list(dict.fromkeys(k for r in ok for k in r["test_result"]))
    metrics = {}
    for key in keys:
        values = [float(r["test_result"][key]) for r in ok if key in r["test_result"]]
        metrics[key] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) >= 2 else None,
            "n": len(values),
            "values": values,
        }
    notes = []
    if failed:
        first_seed, first = failed[0]
        notes.append(f"{len(failed)}/{len(seeds)} seeds failed (seed {first_seed}: {first['error']})")
    if missing:
        notes.append(f"not run: seed {', '.join(map(str, missing))}")
    if (failed or missing) and ok:
        notes.append(f"statistics over {len(ok)} seed{'s' if len(ok) > 1 else ''}")
    status = "FAILED" if failed else "incomplete" if missing else "ok"

    def collect(field):
        return [r[field] for r in ok if r.get(field) is not None]

    best_epochs, per_epoch = collect("best_epoch"), collect("seconds_per_epoch")
    rss, gpu, params = collect("peak_rss_mb"), collect("peak_gpu_mb"), collect("num_params")
    return {
        "model": model,
        "status": status,
        "n": len(ok),
        "n_seeds": len(seeds),
        "seeds": {str(s): (r["status"] if r else "not run") for s, r in zip(seeds, records)},
        "note": "; ".join(notes),
        "metrics": metrics,
        "best_epoch_mean": statistics.fmean(best_epochs) if best_epochs else None,
        "seconds_per_epoch_mean": statistics.fmean(per_epoch) if per_epoch else None,
        "wall_seconds_total": sum(collect("wall_seconds")) if ok else None,
        "peak_rss_mb_max": max(rss) if rss else None,
        "peak_gpu_mb_max": max(gpu) if gpu else None,
        "num_params": params[0] if params else None,
    }


def _header(manifest, records):
    ok = [r for r in records if r and r["status"] == "ok"]

    def distinct(field):
        return sorted({str(r[field]) for r in ok if r.get(field)})

    versions = ok[0]["versions"] if ok else {}
    finished = sorted(r["finished_at"] for r in records if r and r.get("finished_at"))
    return {
        "dataset": manifest["dataset"],
        "config_files": manifest["config_files"],
        "model_configs": manifest.get("model_configs", {}),
        "overrides": manifest["overrides"],
        "models": manifest["models"],
        "seeds": manifest["seeds"],
        "timeout": manifest.get("timeout"),
        "command": manifest.get("command"),
        "valid_metric": distinct("valid_metric"),
        "devices": distinct("device"),
        "cpu": distinct("cpu") or [platform.processor() or platform.machine()],
        "gpu": distinct("gpu"),
        "versions": versions,
        "runs_finished": [finished[0], finished[-1]] if finished else None,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_report(output):
    """Regenerate every table and plot of ``output`` from its run files; returns the summary."""
    output = Path(output)
    manifest = load_manifest(output)
    seeds = manifest["seeds"]
    per_model = {m: [load_run(output, m, s) for s in seeds] for m in manifest["models"]}
    rows = [summarise(m, seeds, recs) for m, recs in per_model.items()]
    header = _header(manifest, [r for recs in per_model.values() for r in recs])
    summary = {"benchmark": header, "rows": rows}
    write_json(output / "results.json", summary)
    write_csv(output / "results.csv", rows)
    write_atomic(output / "results.md", markdown(header, rows))
    plot_metrics(output / "metrics.png", rows, header)
    plot_valid_curves(output / "valid_curves.png", per_model, header)
    return summary


def _metric_keys(rows):
    return list(dict.fromkeys(k for row in rows for k in row["metrics"]))


def write_csv(path, rows):
    keys = _metric_keys(rows)
    fields = ["model", "status", "n", "n_seeds"]
    for key in keys:
        fields += [f"{key}_mean", f"{key}_std"]
    stats = ["best_epoch_mean", "seconds_per_epoch_mean", "wall_seconds_total", "peak_rss_mb_max", "peak_gpu_mb_max", "num_params"]
    fields += stats + ["note"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        line = {field: row[field] for field in ("model", "status", "n", "n_seeds", *stats, "note")}
        for key in keys:
            metric = row["metrics"].get(key, {})
            line[f"{key}_mean"], line[f"{key}_std"] = metric.get("mean"), metric.get("std")
        writer.writerow({k: "" if v is None else v for k, v in line.items()})
    write_atomic(path, text.getvalue())


def _label(key):
    names = {"recall": "Recall", "mrr": "MRR", "ndcg": "NDCG", "hit": "Hit", "precision": "Precision", "map": "MAP"}
    metric, _, k = key.partition("@")
    return f"{names.get(metric, metric)}@{k}" if k else names.get(metric, metric)


def _cell(value, digits=1):
    return "" if value is None else f"{value:,.{digits}f}"


def _escape(text):
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(header, rows):
    keys = _metric_keys(rows)
    shown = [k for k in keys if k.partition("@")[0] in TABLE_METRICS] or keys
    gpu = any(row["peak_gpu_mb_max"] is not None for row in rows)
    files = header["config_files"]
    lines = [
        f"# Leaderboard: {header['dataset']}",
        "",
        f"- **Dataset**: {header['dataset']}",
        "- **Protocol config files**: "
        + (", ".join(f"`{f['path']}` (sha256 {f['sha256'][:12]})" for f in files) if files
           else "none (the plugin's `properties/overall.yaml` and each model's property file)"),
        "- **Per-model config files**: "
        + (", ".join(f"{m}: `{f['path']}`" for m, f in header["model_configs"].items()) if header["model_configs"]
           else "none"),
        f"- **Seeds**: {', '.join(map(str, header['seeds']))}; each cell is the mean ± sample std "
        "(ddof=1) over the seeds that succeeded (n); no std when n = 1",
        "- **Overrides (every run)**: " + (" ".join(f"`{o}`" for o in header["overrides"]) or "none"),
        f"- **Validation metric** (early stopping, curves): {', '.join(header['valid_metric']) or 'n/a'}",
        f"- **Machine**: CPU {', '.join(header['cpu'])}; GPU {', '.join(header['gpu']) or 'none'}; "
        f"device {', '.join(header['devices']) or 'n/a'}",
        "- **Versions**: " + (", ".join(f"{k} {v}" for k, v in header["versions"].items()) or "n/a"),
        f"- **Generated**: {header['generated_at']} from `runs/*.json`"
        + (f" (runs finished {header['runs_finished'][0]} .. {header['runs_finished'][1]})" if header["runs_finished"] else ""),
    ]
    if header.get("command"):
        lines.append(f"- **Command**: `{header['command']}`")
    lines.append("")
    columns = ["Model", "n", *map(_label, shown), "Best epoch", "s/epoch", "Wall (s)", "Peak RSS (MB)"]
    columns += ["Peak GPU (MB)"] if gpu else []
    columns += ["Params", "Status"]
    lines += ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = [row["model"], f"{row['n']}/{row['n_seeds']}"]
        for key in shown:
            metric = row["metrics"].get(key)
            if metric is None:
                cells.append("")
            else:
                std = "" if metric["std"] is None else f" ± {metric['std']:.4f}"
                cells.append(f"{metric['mean']:.4f}{std}")
        cells += [
            _cell(row["best_epoch_mean"]),
            _cell(row["seconds_per_epoch_mean"], 2),
            _cell(row["wall_seconds_total"], 0),
            _cell(row["peak_rss_mb_max"], 0),
        ]
        cells += [_cell(row["peak_gpu_mb_max"], 0)] if gpu else []
        cells += [_cell(row["num_params"], 0), row["status"] + (f": {row['note']}" if row["note"] else "")]
        lines.append("| " + " | ".join(_escape(str(c)) for c in cells) + " |")
    if len(shown) < len(keys):
        lines += ["", f"Also computed, in `results.csv`: {', '.join(_label(k) for k in keys if k not in shown)}."]
    return "\n".join(lines) + "\n"


def _figure(width, height):
    # The object-oriented API renders with Agg and leaves pyplot's global backend alone.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def plot_metrics(path, rows, header):
    rows = [row for row in rows if row["metrics"]]
    keys = [k for k in PLOT_METRICS if any(k in row["metrics"] for row in rows)] or _metric_keys(rows)[:3]
    fig = _figure(max(6.0, 1.2 * len(rows) * max(len(keys), 1) / 2 + 2), 4.5)
    ax = fig.add_subplot()
    width = 0.8 / max(len(keys), 1)
    for i, key in enumerate(keys):
        means = [row["metrics"].get(key, {}).get("mean", 0.0) for row in rows]
        stds = [row["metrics"].get(key, {}).get("std") or 0.0 for row in rows]
        positions = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(rows))]
        ax.bar(positions, means, width, yerr=stds, capsize=3, label=_label(key))
    ax.set_xticks(range(len(rows)), [f"{row['model']} (n={row['n']})" for row in rows])
    ax.set_ylabel("test metric (mean ± std over seeds)")
    ax.set_title(f"{header['dataset']}: test metrics")
    _save(fig, ax, path, bool(keys), "no successful run")


def _save(fig, ax, path, drawn, empty_note):
    """A legend when something was drawn, else ``empty_note`` across the axes; write the PNG."""
    if drawn:
        ax.legend()
    else:
        ax.text(0.5, 0.5, empty_note, ha="center", va="center", transform=ax.transAxes)
    fig.savefig(path, dpi=120)


def plot_valid_curves(path, per_model, header):
    from matplotlib.ticker import MaxNLocator

    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    colors = [f"C{i % 10}" for i in range(len(per_model))]
    drawn = False
    for color, (model, records) in zip(colors, per_model.items()):
        label = model
        for record in records:
            if not record or record["status"] != "ok" or not record["valid_curve"] or not record["eval_step"]:
                continue
            epochs = [record["eval_step"] * (i + 1) for i in range(len(record["valid_curve"]))]
            ax.plot(epochs, record["valid_curve"], color=color, marker=".", alpha=0.8, label=label)
            label, drawn = None, True  # one legend entry per model, one line per seed
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {', '.join(header['valid_metric']) or 'metric'}")
    ax.set_title(f"{header['dataset']}: validation curves (one line per seed)")
    _save(fig, ax, path, drawn, "no validation curve")
