"""What every diagnostics command does around its own work: ``--help``, quiet
RecBole deprecation warnings, and bad input as a one-paragraph error."""

import sys
import warnings

from recbole_selfattn.errors import UsageError


def run_command(argv, usage, body):
    """Run ``body(argv)`` (it prints its result) as a command; return the exit status.

    ``-h``/``--help`` prints ``usage`` (status 0); a :class:`UsageError` prints
    ``error: <message>`` on stderr (status 2); ``argv`` ``None`` reads ``sys.argv``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(usage)
        return 0
    # RecBole 1.2.1 triggers pandas/torch deprecation warnings on every run
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        body(argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
