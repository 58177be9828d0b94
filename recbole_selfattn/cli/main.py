"""The one ``main`` wrapper of every command.

Each command is a function ``body(argv) -> exit status`` and a usage text;
:func:`command` adds what every command line does the same way::

    def main(argv=None):
        return command(_main, USAGE, argv)

* ``-h``/``--help`` anywhere prints the usage (a string, or a function
  returning it, so that building it costs nothing otherwise) and exits 0;
* the pandas/torch deprecation warnings RecBole 1.2.1 triggers on every run
  are hidden (processes the command starts inherit the setting);
* bad input, a :class:`~recbole_selfattn.errors.UsageError` (or a diverging
  run, :class:`~recbole_selfattn.errors.NonFiniteLossError`), is printed as
  one paragraph ``error: ...`` on stderr and exits 2, without a traceback;
  any other exception is a bug and keeps its traceback.

:func:`exit_with` is the ``if __name__ == "__main__"`` line of a module.
"""

import os
import sys
import warnings

from recbole_selfattn.errors import NonFiniteLossError, UsageError

HELP = ("-h", "--help")
_LIBRARY_WARNINGS = (FutureWarning, DeprecationWarning)


def hide_library_warnings():
    """Hide RecBole's pandas/torch deprecation noise, here and in child processes."""
    os.environ.setdefault("PYTHONWARNINGS", ",".join(f"ignore::{w.__name__}" for w in _LIBRARY_WARNINGS))
    for category in _LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", category=category)


def command(body, usage, argv=None):
    """Run ``body(argv)`` as a command line; returns the exit status.

    Args:
        body: the command, ``argv -> int`` (``None`` counts as 0).
        usage (str or callable): the ``--help`` text.
        argv (list of str): the arguments; ``None`` reads ``sys.argv[1:]``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(arg in HELP for arg in argv):
        print(usage() if callable(usage) else usage)
        return 0
    hide_library_warnings()
    try:
        return body(argv) or 0
    except (UsageError, NonFiniteLossError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def exit_with(main):
    """Exit the process with ``main()``'s status."""
    sys.exit(main())
