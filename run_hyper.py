"""Search hyper-parameters: ``python run_hyper.py --model=AttRec --dataset=ml-100k``.

The search space defaults to ``properties/hyper/<Model>.hyper``; see
``python run_hyper.py --help`` and :mod:`recbole_selfattn.hyper`.
"""

import sys

from recbole_selfattn.hyper import main

if __name__ == "__main__":
    sys.exit(main())
