"""What every search tool shares: the objective one trial runs (the plugin
pipeline), the one-line log of a trial, and the output file."""

import numpy as np
from recbole.utils import dict2str

INSTALL_HINT = 'pip install -e ".[tune]"'


def plain(value):
    """A numpy scalar sampled by hyperopt as the Python number it holds."""
    return value.item() if isinstance(value, np.generic) else value


class Objective:
    """What one trial runs: train, validate and test ``model`` through the
    plugin pipeline with the trial's parameters.

    Called as RecBole's ``objective_function(config_dict, config_file_list)``
    and returns the dict :class:`HyperTuning` reads (``model``,
    ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``,
    ``test_result``) plus ``valid_metric`` and ``seconds``."""

    def __init__(self, model, dataset, overrides=(), saved=True):
        self.model = model
        self.dataset = dataset
        self.overrides = list(overrides)
        self.saved = saved

    def __call__(self, config_dict, config_file_list=None):
        from recbole_selfattn.quick_start import run

        result = run(self.model, self.dataset, config_file_list, config_dict=dict(config_dict),
                     saved=self.saved, cmd_args=self.overrides)
        return {
            "model": self.model,
            "best_valid_score": result["best_valid_score"],
            "valid_score_bigger": result["valid_score_bigger"],
            "best_valid_result": result["best_valid_result"],
            "test_result": result["test_result"],
            "valid_metric": result["config"]["valid_metric"].lower(),
            "seconds": result["wall_seconds"],
        }


def trial_line(number, total, params_str, result):
    """The one-line log of a finished trial."""
    head = f"[trial {number}/{total}] {params_str}"
    if "error" in result:
        return f"{head}: failed, {result['error']}"
    metric = result["valid_metric"]
    return (
        f"{head}: valid {metric}={result['best_valid_score']:.4f}, "
        f"test {metric}={result['test_result'].get(metric, float('nan')):.4f} ({result['seconds']:.1f} s)"
    )


def write_result(output_file, params2result, best_params_str):
    """Write every trial in RecBole's ``export_result`` format (parameters,
    ``Valid result:``, ``Test result:``), a failed trial with its error, and
    then the best trial."""
    with open(output_file, "w") as fp:
        for params_str, result in params2result.items():
            fp.write(params_str + "\n")
            if "error" in result:
                fp.write(f"Failed: {result['error']}\n\n")
                continue
            fp.write("Valid result:\n" + dict2str(result["best_valid_result"]) + "\n")
            fp.write("Test result:\n" + dict2str(result["test_result"]) + "\n\n")
        if best_params_str is None:
            fp.write("Best params: none (every trial failed)\n")
            return
        best = params2result[best_params_str]
        fp.write(f"Best params: {best_params_str}\n")
        fp.write("Best valid result:\n" + dict2str(best["best_valid_result"]) + "\n")
        fp.write("Best test result:\n" + dict2str(best["test_result"]) + "\n")
