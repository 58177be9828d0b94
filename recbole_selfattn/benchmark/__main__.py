"""``python -m recbole_selfattn.benchmark``: see :mod:`recbole_selfattn.benchmark.cli`."""

import sys

from recbole_selfattn.benchmark.cli import main

sys.exit(main())
