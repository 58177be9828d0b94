"""Leaderboard benchmark: every (model, seed) in its own process, then tables and plots.

    python -m recbole_selfattn.benchmark --models=AttRec,MTAW,MIND,SASRec,Caser,GRU4Rec \\
        --dataset=ml-1m --seeds=3 --config_files=protocol.yaml --output=results/ml-1m

(or ``python run.py --benchmark ...``). Each run trains and tests through
:func:`recbole_selfattn.quick_start.run` in a fresh worker process, so a
crash, a NaN loss or a timeout in one run does not stop the others, and peak
memory is measured per run. A benchmark is built in slices: interrupted
anywhere and re-run, it continues every unfinished run from its last
completed epoch. The modules, one job each:

* :mod:`~recbole_selfattn.benchmark.cli`: the command line and ``main``;
* :mod:`~recbole_selfattn.benchmark.launcher`: checks, settings, worker processes;
* :mod:`~recbole_selfattn.benchmark.worker`: one run (lock, resume, records);
* :mod:`~recbole_selfattn.benchmark.records`: the results folder's files;
* :mod:`~recbole_selfattn.benchmark.significance`: paired test against the best baseline;
* :mod:`~recbole_selfattn.benchmark.report` and :mod:`~recbole_selfattn.benchmark.plots`:
  tables and plots from the run files alone (``--report-only``).
"""

from recbole_selfattn.benchmark.cli import main
from recbole_selfattn.benchmark.worker import cpu_name

__all__ = ["main", "cpu_name"]
