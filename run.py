"""Train and test a sequential recommender: ``python run.py --model=AttRec --dataset=ml-100k``.

See ``python run.py --help`` and the README.
"""

from recbole_selfattn.cli import main_exit

if __name__ == "__main__":
    main_exit()
