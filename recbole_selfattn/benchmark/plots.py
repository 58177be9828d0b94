"""Leaderboard plots, drawn from the report's rows and run records.

Nothing is dropped or dressed up: every model of the benchmark has a place on
each plot, a FAILED, incomplete or not-run model is labelled so; error bars
(sample std over seeds) are drawn only where a metric has n >= 2 seeds; a
validation record of a single evaluation is a marker, not a line. Each
function returns a matplotlib ``Figure`` (object-oriented API, Agg: pyplot's
global state is left alone) for the caller to save.
"""

from recbole_selfattn.benchmark import records

PLOT_METRICS = ("ndcg@10", "recall@10", "mrr@10")


def _figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _finish(ax, drawn, empty_note):
    """A legend when something was drawn, else ``empty_note`` across the axes."""
    if drawn:
        ax.legend()
    else:
        ax.text(0.5, 0.5, empty_note, ha="center", va="center", transform=ax.transAxes)


def metrics_figure(rows, header):
    """Test NDCG@10, Recall@10 and MRR@10 per model (mean over seeds)."""
    keys = [k for k in PLOT_METRICS if any(k in row["metrics"] for row in rows)]
    fig = _figure(max(6.0, 1.2 * len(rows) * max(len(keys), 1) / 2 + 2), 4.5)
    ax = fig.add_subplot()
    width = 0.8 / max(len(keys), 1)
    for i, key in enumerate(keys):
        positions = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(rows))]
        metrics = [row["metrics"].get(key) for row in rows]
        ax.bar(positions, [m["mean"] if m else 0.0 for m in metrics], width, label=records.metric_label(key))
        spread = [(x, m["mean"], m["std"]) for x, m in zip(positions, metrics) if m and m["std"] is not None]
        if spread:
            xs, means, stds = zip(*spread)
            ax.errorbar(xs, means, yerr=stds, fmt="none", ecolor="black", capsize=3)
    for j, row in enumerate(rows):
        if row["status"] != "ok":
            ax.annotate(row["status"], (j, 0), xytext=(0, 4), textcoords="offset points", ha="center",
                        va="bottom", rotation=90, color="firebrick")
    labels = [f"{row['model']}\nn={row['n']}/{row['n_seeds']}" + ("" if row["status"] == "ok" else f"\n{row['status']}")
              for row in rows]
    ax.set_xticks(range(len(rows)), labels)
    ax.set_ylabel("test metric (mean over seeds; bars ± std where n ≥ 2)")
    ax.set_title(f"{header['dataset']}: test metrics")
    _finish(ax, bool(keys), "no successful run")
    return fig


def valid_curves_figure(per_model, rows, header):
    """The validation metric after each evaluation, one line per run; a run
    with one evaluation is a marker; a model without any curve is listed."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    status = {row["model"]: row["status"] for row in rows}
    for i, (model, runs) in enumerate(per_model.items()):
        color = f"C{i % 10}"
        curves = [r for r in runs if r and r["status"] == "ok" and r.get("valid_curve") and r.get("eval_step")]
        label = model if status[model] == "ok" else f"{model} ({status[model]})"
        if not curves:
            ax.plot([], [], color=color, linestyle="none", marker="x", label=f"{label}: no curve")
        for run in curves:
            epochs = [run["eval_step"] * (k + 1) for k in range(len(run["valid_curve"]))]
            style = {"linestyle": "none", "marker": "o"} if len(epochs) == 1 else {"marker": "."}
            ax.plot(epochs, run["valid_curve"], color=color, alpha=0.8, label=label, **style)
            label = None  # one legend entry per model, one line per seed
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {', '.join(header['valid_metric']) or 'metric'}")
    ax.set_title(f"{header['dataset']}: validation curves (one line per seed)")
    _finish(ax, bool(per_model), "no model")
    return fig
