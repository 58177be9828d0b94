"""One search, whichever the tool: read and check the space, then run it."""

import os

from recbole_selfattn.errors import UsageError
from recbole_selfattn.hyper.hyperopt_tool import hyperopt_search
from recbole_selfattn.hyper.ray_tool import ray_search
from recbole_selfattn.hyper.space import check_params, default_params_file, read_params_file
from recbole_selfattn.hyper.trials import Objective

TOOLS = ("hyperopt", "ray")
ALGOS = ("exhaustive", "random", "bayes")


def search(model, dataset, config_files=None, overrides=(), params_file=None, tool="hyperopt", algo="exhaustive",
           max_evals=100, early_stop=10, search_seed=2020, output_file=None, saved=True):
    """Search ``params_file``'s space for ``model`` on ``dataset`` and write
    ``output_file``; returns ``(params2result, best_params_str)``."""
    from recbole_selfattn.config import Config

    overrides = list(overrides)
    if params_file is None:
        params_file = default_params_file(model)
        if not params_file.is_file():
            raise UsageError(
                f"No hyper-parameter file ships for {model}. Pass --params_file=FILE with lines like "
                "'learning_rate choice [0.001,0.01]'."
            )
    params = read_params_file(params_file)
    config = Config(model, dataset, config_files, None, cmd_args=overrides)
    check_params(params, config, overrides, algo)
    config_files = [os.path.abspath(f) for f in config_files or []] or None
    objective = Objective(model, dataset, overrides, saved=saved)
    output_file = output_file or f"hyper_{model}.result"
    if tool == "ray":
        return ray_search(objective, params, config_files, output_file, algo, max_evals, search_seed,
                          config["valid_metric_bigger"], config["valid_metric"].lower(),
                          use_gpu=config["device"].type == "cuda")
    return hyperopt_search(objective, params, config_files, output_file, algo, max_evals, early_stop, search_seed)
