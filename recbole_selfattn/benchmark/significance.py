"""Each model against the best baseline: a paired test over the test users.

The baseline is the RecBole built-in model (a run record's ``source`` is
``recbole``) with the best mean validation NDCG@10 over its successful seeds;
test metrics never choose it. Each other model is compared with it on the
test users' NDCG@10 (``per_user/`` files): a user's value is averaged over the
seeds both models completed, and the Wilcoxon signed-rank test (two-sided,
``scipy.stats.wilcoxon``) is run on the paired values of the users both have.
"""

import statistics

METRIC = "ndcg@10"
TEST_NAME = "Wilcoxon signed-rank, two-sided"


def best_baseline(per_model):
    """The RecBole built-in with the best mean validation NDCG@10, or ``None``."""
    scores = {}
    for model, records in per_model.items():
        ok = [r for r in records if r and r["status"] == "ok" and r.get("source") == "recbole"]
        values = [r["best_valid_result"][METRIC] for r in ok if METRIC in (r.get("best_valid_result") or {})]
        if values:
            scores[model] = statistics.fmean(values)
    return max(scores, key=scores.get) if scores else None


def _per_user_means(load, records):
    """``{user: mean over the given runs}`` or ``None`` when a run has no per-user file."""
    tables = [load(r) for r in records]
    if any(t is None for t in tables):
        return None
    users = set.intersection(*(set(t) for t in tables))
    return {u: statistics.fmean(t[u] for t in tables) for u in users}


def paired_test(load, model_records, baseline_records):
    """The test of one model's runs against the baseline's, paired by seed and user.

    Args:
        load (callable): a run record -> ``{user token: NDCG@10}`` or ``None``.
        model_records, baseline_records (list): run records (``None`` = not run), one per seed.

    Returns:
        dict: ``test``, ``p_value`` (``None`` when every difference is zero),
        ``mean_difference`` (model - baseline), ``users``, ``seeds``; or ``None``
        when no seed has per-user metrics for both.
    """
    pairs = [(m, b) for m, b in zip(model_records, baseline_records)
             if m and b and m["status"] == "ok" and b["status"] == "ok"]
    if not pairs:
        return None
    ours = _per_user_means(load, [m for m, _ in pairs])
    theirs = _per_user_means(load, [b for _, b in pairs])
    if ours is None or theirs is None:
        return None
    users = sorted(set(ours) & set(theirs))
    if not users:
        return None
    differences = [ours[u] - theirs[u] for u in users]
    p_value = None
    if any(differences):
        from scipy.stats import wilcoxon

        p_value = float(wilcoxon([ours[u] for u in users], [theirs[u] for u in users]).pvalue)
    return {
        "test": TEST_NAME,
        "metric": METRIC,
        "p_value": p_value,
        "mean_difference": statistics.fmean(differences),
        "users": len(users),
        "seeds": [m["seed"] for m, _ in pairs],
    }


def compare_all(load, per_model):
    """``(baseline, {model: paired_test or None})`` for every model but the baseline."""
    baseline = best_baseline(per_model)
    if baseline is None:
        return None, {}
    return baseline, {
        model: paired_test(load, records, per_model[baseline]) for model, records in per_model.items() if model != baseline
    }
