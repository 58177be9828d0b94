"""The search with Ray Tune: ``tune.run`` over the same space (``grid_search``
for exhaustive, Tune's seeded samplers for random, ``HyperOptSearch`` for
bayes), one CPU (and a GPU when training uses one) per trial.

Needs ``ray[tune]`` (its pyarrow included); ray 2.6, RecBole 1.2.1's, also
needs ``pkg_resources`` (setuptools < 81) and, in every worker, the numpy
aliases of :mod:`recbole_selfattn.compat` (installed by a worker setup hook).
"""

from pathlib import Path

from recbole.trainer.hyper_tuning import HyperTuning as RecBoleHyperTuning

from recbole_selfattn import compat
from recbole_selfattn.errors import UsageError
from recbole_selfattn.hyper.space import hyperopt_space, tune_space
from recbole_selfattn.hyper.trials import INSTALL_HINT, plain, trial_line, write_result


def import_tune():
    """``ray.tune``, or a :class:`UsageError` saying how to install it."""
    try:
        from ray import tune
    except (ImportError, AttributeError) as e:
        raise UsageError(
            f"--tool=ray needs Ray Tune, which could not be imported ({type(e).__name__}: {e}). Install it with "
            f"{INSTALL_HINT}; ray 2.6 (RecBole 1.2.1's) also needs pkg_resources, i.e. setuptools < 81, and "
            "numpy's np.bool8, which recbole_selfattn restores. Or search with the default --tool=hyperopt."
        ) from e
    return tune


def _ray_trial(objective, config_files, config):
    result = objective(config, config_files)
    report = {"best_valid_score": result["best_valid_score"], "seconds": result["seconds"]}
    report.update({f"valid_{k}": v for k, v in result["best_valid_result"].items()})
    report.update({f"test_{k}": v for k, v in result["test_result"].items()})
    return report


def _from_report(report, valid_metric):
    def metrics(prefix):
        return {k[len(prefix):]: v for k, v in report.items() if k.startswith(prefix)}

    return {"best_valid_score": report["best_valid_score"], "best_valid_result": metrics("valid_"),
            "test_result": metrics("test_"), "valid_metric": valid_metric, "seconds": report["seconds"]}


def ray_search(objective, params, config_files, output_file, algo, max_evals, seed, bigger, valid_metric, use_gpu):
    """Search with Ray Tune, write ``output_file``; returns ``(params2result, best_params_str)``.

    Exhaustive search runs the whole grid (``max_evals`` is for random and
    bayes). Trials keep the current directory, so relative paths resolve as
    for hyperopt; results go to ``./ray_log``."""
    tune = import_tune()
    import ray

    mode = "max" if bigger else "min"
    if algo == "bayes":
        from ray.tune.search.hyperopt import HyperOptSearch

        search_alg = HyperOptSearch(hyperopt_space(params), metric="best_valid_score", mode=mode,
                                    random_state_seed=seed)
        space = None
    else:
        from ray.tune.search import BasicVariantGenerator

        search_alg = BasicVariantGenerator(random_state=seed)
        space = tune_space(params, tune, grid=algo == "exhaustive")

    def trainable(config):
        return _ray_trial(objective, config_files, config)

    started = not ray.is_initialized()
    if started:  # workers need the numpy aliases before ray unpickles the trainable
        ray.init(include_dashboard=False, runtime_env={"worker_process_setup_hook": compat.apply})
    try:
        analysis = tune.run(
            trainable,
            name=f"hyper_{objective.model}",
            config=space,
            search_alg=search_alg,
            num_samples=1 if algo == "exhaustive" else max_evals,
            metric="best_valid_score",
            mode=mode,
            resources_per_trial={"cpu": 1, "gpu": 1 if use_gpu else 0},
            storage_path=str(Path("ray_log").resolve()),
            chdir_to_trial_dir=False,
            raise_on_failed_trial=False,
            verbose=1,
        )
    finally:
        if started:
            ray.shutdown()

    def params_str(trial):
        return RecBoleHyperTuning.params2str({p.name: plain(trial.config[p.name]) for p in params})

    params2result = {}
    for number, trial in enumerate(analysis.trials, start=1):
        key = params_str(trial)
        if trial.status == trial.ERROR or "best_valid_score" not in (trial.last_result or {}):
            params2result[key] = {"error": f"the trial failed, see {trial.error_file or 'ray_log'}"}
        else:
            params2result[key] = _from_report(trial.last_result, valid_metric)
        print(trial_line(number, len(analysis.trials), key, params2result[key]), flush=True)
    best = analysis.get_best_trial("best_valid_score", mode, "last")
    best_str = None if best is None else params_str(best)
    write_result(output_file, params2result, best_str)
    return params2result, best_str
