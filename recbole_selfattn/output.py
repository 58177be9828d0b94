"""What a person sees of a run: a metrics table, progress bars only on a
terminal, the long config dump only in the log file, no library noise.

* :func:`metrics_table`: the best validation and test metrics side by side,
  one row per metric.
* :func:`default_show_progress`: RecBole draws a tqdm bar per epoch by
  default, which fills a redirected log with thousands of lines; unless the
  user sets ``show_progress``, bars are drawn only when both standard output
  and standard error are terminals.
* :func:`log_to_file`: a record for RecBole's log file only (the config
  dump), not for the console.
* :func:`quiet_library_warnings`: the ``FutureWarning`` and
  ``DeprecationWarning`` that RecBole 1.2.1's own code triggers in pandas and
  torch on every run (``fillna(inplace=True)`` on a column, ``GradScaler``,
  ...) are ignored when they are raised from RecBole's modules, as is
  numpy 2's ``__array_wrap__`` notice about the torch tensors RecBole hands
  to numpy; warnings from anything else still show.
"""

import logging
import sys
import warnings

_RECBOLE_MODULES = r"recbole(\..*)?$"


def quiet_library_warnings():
    """Ignore deprecation noise attributed to RecBole's own modules."""
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=_RECBOLE_MODULES)
    # numpy 2 on a torch tensor RecBole hands to numpy (raised inside numpy).
    warnings.filterwarnings("ignore", message="__array_wrap__ must accept context", category=DeprecationWarning)


def default_show_progress():
    """Progress bars by default only when a person watches both streams."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def log_to_file(message, logger=None):
    """Write ``message`` at INFO level to the file handlers of ``logger``
    (RecBole's: the root logger) and nowhere else."""
    logger = logger or logging.getLogger()
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, None, None)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def metrics_table(valid, test):
    """``valid`` and ``test`` (metric name -> value, ``ndcg@10`` style) as a
    text table: a row per metric, its best validation and its test value
    (``-`` where one of them lacks the metric)."""
    names = list(dict.fromkeys([*valid, *test]))
    width = max([len(name) for name in names] + [len("metric")])

    def cell(result, name):
        return f"{result[name]:<12.4f}" if name in result else f"{'-':<12}"

    lines = [f"{'metric':<{width}}  {'best valid':<12}test result"]
    lines += [f"{name:<{width}}  {cell(valid, name)}{cell(test, name)}" for name in names]
    return "\n".join(line.rstrip() for line in lines)
