"""The command lines. Every command shares one parser and one ``main`` wrapper:

* :mod:`~recbole_selfattn.cli.args`: :func:`parse_args`, RecBole's
  ``--key=value`` arguments plus the command's own options;
* :mod:`~recbole_selfattn.cli.main`: :func:`command`, ``--help``, warnings,
  bad input as one paragraph and exit status 2;
* :mod:`~recbole_selfattn.cli.train`: ``python run.py`` and the
  ``recbole-selfattn`` console script (:func:`main`).

The other commands live with what they drive: ``run_hyper.py``
(:mod:`recbole_selfattn.hyper.cli`), the leaderboard
(``python -m recbole_selfattn.benchmark``), the converters
(``python -m recbole_selfattn.data.convert``) and MIND's diagnostics
(``python -m recbole_selfattn.diagnostics.mind``). None imports model code
before it needs it: ``--help`` stays instant.
"""

from recbole_selfattn.cli.train import main, main_exit, parse_args, usage

__all__ = ["main", "main_exit", "parse_args", "usage"]
