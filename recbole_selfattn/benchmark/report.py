"""Leaderboard tables, generated from a benchmark's run files only.

:func:`write_report` reads ``benchmark.json``, ``runs/*.json`` and
``per_user/*.json`` (:mod:`~recbole_selfattn.benchmark.records`) and writes,
in the same folder:

* ``results.md``: a header (dataset, protocol config files, seeds, overrides,
  date, machine, the significance test) above a Markdown table, one row per model;
* ``results.csv`` and ``results.json``: the same rows with full precision
  (``results.json`` also keeps every seed's value and the test's details);
* ``metrics.png`` and ``valid_curves.png`` (:mod:`~recbole_selfattn.benchmark.plots`).

A row's test metrics are the mean and the sample standard deviation
(``ddof=1``) over the seeds whose run succeeded; with one seed there is no
standard deviation (blank) and ``n`` says so. A model with a failed or missing
seed is marked ``FAILED`` (or ``incomplete``) with the reason, and keeps the
statistics of its successful seeds. A run file that is not a JSON record
(e.g. truncated by a crash) counts as a failed run whose note says so; the
benchmark command redoes it. Beside the metrics: seconds per epoch, time to
the best validation score and total training time (training and validation,
mean over seeds), peak memory, and the paired test against the best baseline
(:mod:`~recbole_selfattn.benchmark.significance`). This module imports no
model code, so ``--report-only`` is quick.
"""

import csv
import io
import platform
import statistics
from datetime import datetime, timezone
from pathlib import Path

from recbole_selfattn.benchmark import plots, records, significance

NOT_RUN = "not run"  # a seed's status in a row while its run has no record
TABLE_METRICS = ("recall", "mrr", "ndcg", "hit")  # the Markdown table's metrics (all are in the CSV)
STATS = ("best_epoch_mean", "seconds_per_epoch_mean", "seconds_to_best_mean", "train_seconds_mean",
         "wall_seconds_total", "peak_rss_mb_max", "peak_gpu_mb_max", "num_params")


def aggregate(ok, field):
    """``{metric: {mean, std, n, values}}`` of ``field`` (``test_result`` or
    ``best_valid_result``) over the successful runs ``ok``; no std for n = 1."""
    keys = list(dict.fromkeys(k for r in ok for k in (r.get(field) or {})))
    metrics = {}
    for key in keys:
        values = [float(r[field][key]) for r in ok if key in (r.get(field) or {})]
        metrics[key] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) >= 2 else None,
            "n": len(values),
            "values": values,
        }
    return metrics


def summarise(model, seeds, runs):
    """One leaderboard row from the model's run records (``None`` = not run)."""
    ok = [r for r in runs if r and r["status"] == "ok"]
    failed = [(s, r) for s, r in zip(seeds, runs) if r and r["status"] != "ok"]
    missing = [s for s, r in zip(seeds, runs) if r is None]
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

    def mean(field):
        values = collect(field)
        return statistics.fmean(values) if values else None

    rss, gpu, params = collect("peak_rss_mb"), collect("peak_gpu_mb"), collect("num_params")
    return {
        "model": model,
        "status": status,
        "n": len(ok),
        "n_seeds": len(seeds),
        "seeds": {str(s): (r["status"] if r else NOT_RUN) for s, r in zip(seeds, runs)},
        "note": "; ".join(notes),
        "metrics": aggregate(ok, "test_result"),
        "valid_metrics": aggregate(ok, "best_valid_result"),
        "best_epoch_mean": mean("best_epoch"),
        "seconds_per_epoch_mean": mean("seconds_per_epoch"),
        "seconds_to_best_mean": mean("seconds_to_best"),
        "train_seconds_mean": mean("train_seconds"),
        "wall_seconds_total": sum(collect("wall_seconds")) if ok else None,
        "peak_rss_mb_max": max(rss) if rss else None,
        "peak_gpu_mb_max": max(gpu) if gpu else None,
        "num_params": params[0] if params else None,
    }


def _header(manifest, runs, baseline):
    ok = [r for r in runs if r and r["status"] == "ok"]

    def distinct(field):
        return sorted({str(r[field]) for r in ok if r.get(field)})

    versions = ok[0].get("versions", {}) if ok else {}
    finished = sorted(r["finished_at"] for r in runs if r and r.get("finished_at"))
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
        "torch_threads": distinct("torch_threads"),
        "versions": versions,
        "runs_finished": [finished[0], finished[-1]] if finished else None,
        "baseline": baseline,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_report(output):
    """Regenerate every table and plot of ``output`` from its run files; returns the summary."""
    output = Path(output)
    manifest = records.load_manifest(output)
    seeds = manifest["seeds"]
    per_model = {m: [records.load_run(output, m, s) for s in seeds] for m in manifest["models"]}
    baseline, tests = significance.compare_all(
        lambda record: records.load_per_user(output, record, significance.METRIC), per_model
    )
    rows = []
    for model, runs in per_model.items():
        row = summarise(model, seeds, runs)
        row["baseline"] = model == baseline
        row["significance"] = tests.get(model)
        rows.append(row)
    header = _header(manifest, [r for runs in per_model.values() for r in runs], baseline)
    summary = {"benchmark": header, "rows": rows}
    if manifest.get("variants"):
        from recbole_selfattn.benchmark import study  # its table builds on this module's

        header["chosen"] = study.choose(rows, study.choice_metric(header))
        header["unfinished"] = [row["model"] for row in rows if NOT_RUN in row["seeds"].values()]
        for row in rows:  # a study reports test metrics once, for the row chosen on validation
            if row["model"] != header["chosen"] or header["unfinished"]:
                row["metrics"], row["significance"] = {}, None
        text = study.markdown(header, rows)
    else:
        text = markdown(header, rows)
    records.write_json(output / "results.json", summary)
    write_csv(output / "results.csv", rows)
    records.write_atomic(output / "results.md", text)
    plots.metrics_figure(rows, header).savefig(output / "metrics.png", dpi=120)
    plots.valid_curves_figure(per_model, rows, header).savefig(output / "valid_curves.png", dpi=120)
    return summary


def _metric_keys(rows, field="metrics"):
    return list(dict.fromkeys(k for row in rows for k in row[field]))


def write_csv(path, rows):
    keys = _metric_keys(rows)
    fields = ["model", "status", "n", "n_seeds"]
    for key in keys:
        fields += [f"{key}_mean", f"{key}_std"]
    fields += [*STATS, "baseline", "p_value", "mean_difference", "note"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        line = {field: row[field] for field in ("model", "status", "n", "n_seeds", *STATS, "baseline", "note")}
        test = row["significance"] or {}
        line["p_value"], line["mean_difference"] = test.get("p_value"), test.get("mean_difference")
        for key in keys:
            metric = row["metrics"].get(key, {})
            line[f"{key}_mean"], line[f"{key}_std"] = metric.get("mean"), metric.get("std")
        writer.writerow({k: "" if v is None else v for k, v in line.items()})
    records.write_atomic(path, text.getvalue())


def cell(value, digits=1):
    return "" if value is None else f"{value:,.{digits}f}"


def _significance_cell(row):
    if row["baseline"]:
        return "baseline"
    test = row["significance"]
    if test is None:
        return "n/a"
    p = "identical" if test["p_value"] is None else f"p={test['p_value']:.2g}"
    return f"{test['mean_difference']:+.4f}, {p}"


def _significance_line(header):
    if not header["baseline"]:
        return "none: no RecBole built-in model succeeded with per-user test metrics"
    return (f"each model vs **{header['baseline']}**, the RecBole built-in with the best mean validation "
            f"NDCG@10; {significance.TEST_NAME} test (scipy) over the test users' NDCG@10, each user's value "
            "averaged over the seeds both models completed; the cell is the mean difference and the p-value")


def escape(text):
    return text.replace("|", "\\|").replace("\n", " ")


def header_lines(header):
    """The Markdown header above a table: what was run, how, where."""
    files = header["config_files"]
    lines = [
        f"# Leaderboard: {header['dataset']}",
        "",
        f"- **Dataset**: {header['dataset']}",
        "- **Protocol config files**: "
        + (", ".join(f"`{f['path']}` (sha256 {f['sha256'][:12]})" for f in files) if files
           else "none (the plugin's `recbole_selfattn/properties/overall.yaml` and each model's property file)"),
        "- **Per-model config files**: "
        + (", ".join(f"{m}: `{f['path']}`" for m, f in header["model_configs"].items()) if header["model_configs"]
           else "none"),
        f"- **Seeds**: {', '.join(map(str, header['seeds']))}; each cell is the mean ± sample std "
        "(ddof=1) over the seeds that succeeded (n); no std when n = 1",
        "- **Overrides (every run)**: " + (" ".join(f"`{o}`" for o in header["overrides"]) or "none"),
        f"- **Validation metric** (early stopping, curves): {', '.join(header['valid_metric']) or 'n/a'}",
        f"- **Significance**: {_significance_line(header)}",
        "- **Time**: s/epoch is training only; to best and total are training plus validation up to the "
        "best validation score and to the end of training (mean over seeds, resumed runs counted once)",
        f"- **Machine**: CPU {', '.join(header['cpu'])}; GPU {', '.join(header['gpu']) or 'none'}; "
        f"device {', '.join(header['devices']) or 'n/a'}; torch threads per run "
        f"{', '.join(header['torch_threads']) or 'n/a'}",
        "- **Versions**: " + (", ".join(f"{k} {v}" for k, v in header["versions"].items()) or "n/a"),
        f"- **Generated**: {header['generated_at']} from `runs/*.json`"
        + (f" (runs finished {header['runs_finished'][0]} .. {header['runs_finished'][1]})" if header["runs_finished"] else ""),
    ]
    if header.get("command"):
        lines.append(f"- **Command**: `{header['command']}`")
    return lines + [""]


def markdown(header, rows):
    keys = _metric_keys(rows)
    shown = [k for k in keys if k.partition("@")[0] in TABLE_METRICS] or keys
    gpu = any(row["peak_gpu_mb_max"] is not None for row in rows)
    lines = header_lines(header)
    columns = ["Model", "n", *map(records.metric_label, shown), "vs baseline", "Best epoch", "s/epoch", "To best (s)",
               "Total (s)", "Peak RSS (MB)"]
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
            _significance_cell(row),
            cell(row["best_epoch_mean"]),
            cell(row["seconds_per_epoch_mean"], 2),
            cell(row["seconds_to_best_mean"], 0),
            cell(row["train_seconds_mean"], 0),
            cell(row["peak_rss_mb_max"], 0),
        ]
        cells += [cell(row["peak_gpu_mb_max"], 0)] if gpu else []
        cells += [cell(row["num_params"], 0), row["status"] + (f": {row['note']}" if row["note"] else "")]
        lines.append("| " + " | ".join(escape(str(c)) for c in cells) + " |")
    if len(shown) < len(keys):
        lines += ["", f"Also computed, in `results.csv`: {', '.join(records.metric_label(k) for k in keys if k not in shown)}."]
    return "\n".join(lines) + "\n"
