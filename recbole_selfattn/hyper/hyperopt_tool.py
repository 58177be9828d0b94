"""The search with hyperopt: RecBole's
:class:`~recbole.trainer.hyper_tuning.HyperTuning` with algo ``exhaustive``
(the grid; only ``choice``), ``random`` or ``bayes`` (TPE), seeded, robust
to a diverging trial, and ending its output file with the best parameters."""

import math
from functools import partial

import numpy as np
from recbole.trainer.hyper_tuning import HyperTuning as RecBoleHyperTuning

from recbole_selfattn.errors import NonFiniteLossError, UsageError
from recbole_selfattn.hyper.space import hyperopt_space
from recbole_selfattn.hyper.trials import INSTALL_HINT, plain, trial_line, write_result


def grid_suggest(new_ids, domain, trials, seed, grid):
    """hyperopt algorithm drawing grid points of ``choice`` parameters at
    random without repetition, as RecBole's ``exhaustive_search`` (so that
    early stopping samples the whole grid, not its first rows).

    ``grid`` maps each parameter to its number of options. RecBole's version
    seeds a ``np.random.RandomState``, which hyperopt >= 0.2.7 cannot use
    (RecBole issue #1868); this one draws from hyperopt's ``seed``."""
    from hyperopt.base import miscs_update_idxs_vals

    names, shape = list(grid), tuple(grid.values())
    visited = {np.ravel_multi_index([t["misc"]["vals"][name][0] for name in names], shape) for t in trials.trials}
    unvisited = [index for index in range(math.prod(shape)) if index not in visited]
    picks = np.random.default_rng(seed).permutation(unvisited)[:len(new_ids)]
    docs = []
    for new_id, index in zip(new_ids, picks):
        point = np.unravel_index(index, shape)
        misc = dict(tid=new_id, cmd=domain.cmd, workdir=domain.workdir)
        miscs_update_idxs_vals([misc], {name: [new_id] for name in names},
                               {name: [int(i)] for name, i in zip(names, point)})
        docs += trials.new_trial_docs([new_id], [None], [domain.new_result()], [misc])
    return docs


class HyperTuning(RecBoleHyperTuning):
    """RecBole's :class:`~recbole.trainer.hyper_tuning.HyperTuning`, with:

    * exhaustive search by :func:`grid_suggest` (RecBole's fails on
      hyperopt >= 0.2.7), capped by ``max_evals`` too (RecBole replaces
      ``max_evals`` by the grid size);
    * a seeded search (``seed``; RecBole's draws from an unseeded generator);
    * a trial whose training diverges (:class:`NonFiniteLossError`, e.g. a
      too-large learning rate) recorded as failed, not ending the search;
    * a log line per trial, and the best parameters at the end of the output file.
    """

    def __init__(self, objective_function, params, fixed_config_file_list=None, algo="exhaustive",
                 max_evals=100, early_stop=10, seed=2020):
        super().__init__(objective_function, space=hyperopt_space(params),
                         fixed_config_file_list=fixed_config_file_list, algo=algo, max_evals=max_evals,
                         early_stop=early_stop)
        if algo == "exhaustive":
            self.algo = partial(grid_suggest, grid={p.name: len(p.values) for p in params})
            self.max_evals = int(min(self.max_evals, max_evals))
        self.seed = seed

    def trial(self, params):
        import hyperopt

        params = {name: plain(params[name]) for name in self.space}  # in the .hyper file's order
        try:
            outcome = super().trial(params)
        except NonFiniteLossError as e:
            self.params2result[self.params2str(params)] = {"error": str(e)}
            outcome = {"loss": None, "status": hyperopt.STATUS_FAIL}
        print(trial_line(len(self.params_list), self.max_evals, self.params_list[-1],
                         self.params2result[self.params_list[-1]]), flush=True)
        return outcome

    def run(self):
        from hyperopt import fmin

        fmin(self.trial, self.space, algo=self.algo, max_evals=self.max_evals, early_stop_fn=self.early_stop_fn,
             rstate=np.random.default_rng(self.seed), return_argmin=False, show_progressbar=False)

    def best_params_str(self):
        return None if self.best_params is None else self.params2str(self.best_params)

    def export_result(self, output_file=None):
        write_result(output_file, self.params2result, self.best_params_str())


def hyperopt_search(objective, params, config_files, output_file, algo, max_evals, early_stop, seed):
    """Search with hyperopt, write ``output_file``; returns ``(params2result, best_params_str)``."""
    try:
        import hyperopt  # noqa: F401
    except ImportError as e:
        raise UsageError(
            f"--tool=hyperopt needs hyperopt, which could not be imported ({e}). Install it with "
            f'{INSTALL_HINT} (hyperopt >= 0.3; 0.2.7 imports pkg_resources, which setuptools >= 82 no longer has).'
        ) from e
    tuner = HyperTuning(objective, params, fixed_config_file_list=config_files, algo=algo,
                        max_evals=max_evals, early_stop=early_stop, seed=seed)
    tuner.run()
    tuner.export_result(output_file)
    return tuner.params2result, tuner.best_params_str()
