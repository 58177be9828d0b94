"""Search hyper-parameters: ``python run_hyper.py --model=AttRec --dataset=ml-100k``.

The search space defaults to ``recbole_selfattn/properties/hyper/<Model>.hyper``;
see ``python run_hyper.py --help`` and :mod:`recbole_selfattn.hyper`.
"""

from recbole_selfattn.cli.main import exit_with
from recbole_selfattn.hyper import main

if __name__ == "__main__":
    exit_with(main)
