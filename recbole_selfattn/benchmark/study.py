"""A study: one model under several settings (``--variants``), one row each.

The table shows every row's validation metrics (mean ± std over seeds) and
marks the row chosen on the validation metric; the test metrics are reported
once, for that row only, so the test set never takes part in the choice, and
only when every row has run (before that the leading row is provisional).
"""

from recbole_selfattn.benchmark import records
from recbole_selfattn.benchmark.report import TABLE_METRICS, cell, escape, header_lines


def choice_metric(header):
    """The runs' validation metric (early stopping), e.g. ``ndcg@10``."""
    return header["valid_metric"][0].lower() if len(header["valid_metric"]) == 1 else "ndcg@10"


def choose(rows, metric):
    """The row with the best mean validation ``metric`` (bigger is better, as for
    every ranking metric), or ``None`` when no row succeeded."""
    scored = {row["model"]: row["valid_metrics"][metric]["mean"] for row in rows if metric in row["valid_metrics"]}
    return max(scored, key=scored.get) if scored else None


def _mean_std(metric):
    if metric is None:
        return ""
    std = "" if metric["std"] is None else f" ± {metric['std']:.4f}"
    return f"{metric['mean']:.4f}{std}"


def markdown(header, rows):
    """``results.md`` of a study."""
    chosen, unfinished = header["chosen"], header["unfinished"]
    keys = [k for k in dict.fromkeys(k for row in rows for k in row["valid_metrics"])
            if k.partition("@")[0] in TABLE_METRICS]
    lines = header_lines(header)
    lines += [f"Study of one model: every row's **validation** metrics; the row chosen on validation "
              f"{records.metric_label(choice_metric(header))} is marked, and only its test metrics are "
              "reported (below).", ""]
    columns = ["Row", "n", *(f"valid {records.metric_label(k)}" for k in keys), "s/epoch", "Chosen", "Status"]
    lines += ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = [row["model"], f"{row['n']}/{row['n_seeds']}", *(_mean_std(row["valid_metrics"].get(k)) for k in keys),
                 cell(row["seconds_per_epoch_mean"], 2),
                 "" if row["model"] != chosen else "leading" if unfinished else "**chosen**",
                 row["status"] + (f": {row['note']}" if row["note"] else "")]
        lines.append("| " + " | ".join(escape(str(c)) for c in cells) + " |")
    lines.append("")
    if unfinished:
        return "\n".join(lines + [
            f"Unfinished study: {len(unfinished)} of {len(rows)} rows have runs not yet made "
            f"({', '.join(unfinished)}). The leading row is provisional and no test metrics are reported "
            "until every row has run: re-run the command to finish them.", ""])
    if chosen is None:
        return "\n".join(lines + ["No row succeeded: no test metrics to report.", ""])
    test = next(row for row in rows if row["model"] == chosen)["metrics"]
    shown = [k for k in test if k.partition("@")[0] in TABLE_METRICS]
    lines += [f"Test metrics of the chosen row, {chosen} (reported once):", ""]
    lines += ["| " + " | ".join(records.metric_label(k) for k in shown) + " |", "|" + "|".join("---" for _ in shown) + "|"]
    lines.append("| " + " | ".join(_mean_std(test[k]) for k in shown) + " |")
    return "\n".join(lines) + "\n"
