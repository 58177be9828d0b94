"""``python -m recbole_selfattn.hyper``, the same command as ``run_hyper.py``."""

from recbole_selfattn.cli.main import exit_with
from recbole_selfattn.hyper.cli import main

if __name__ == "__main__":
    exit_with(main)
