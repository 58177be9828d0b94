"""Untrained baselines on the leaderboard's protocol: how far a learned model is above counting.

Two scorers are built from the training split alone and evaluated by
RecBole's own ``Trainer.evaluate`` on the same validation and test loaders a
``run.py`` run uses (same split, full ranking, same metrics), so their
figures sit beside the models' on one protocol:

* **Pop**: an item's score is its number of training interactions;
* **Window(W)**: item-to-item transition counts. ``C[a, b]`` counts how
  often ``b`` is a training target within the ``W`` items after ``a``
  (prefix ``[.., a, x_1 .. x_{k-1}] -> b`` with ``k <= W``); a sequence's
  score for ``b`` is ``sum_k C[item_{-k}, b]`` over its last ``W`` items (a
  mean-pooled window of item-item co-occurrences; ``W = 1`` is a first-order
  Markov chain). Ties are broken by popularity;
* **Symmetric(W)**: the same window, counted in both directions
  (``C + C^T``: ``b`` within ``W`` items after ``a`` or before it). Order is
  ignored, as in a score that is a distance between two items of one
  embedding table (AttRec's ``||m - X_i||^2``, with the intent ``m`` a mean of
  the window's own ``X`` rows): its gap to Window(W) is what the direction of
  a transition is worth on the protocol.

The row is chosen on the validation metric; the test figures are reported
once, for Pop and the chosen row::

    python benchmarks/plain_baselines.py --dataset=ml-1m \\
        --config_files=recbole_selfattn/properties/benchmark/ml-1m.yaml \\
        --output=results/studies/plain-baselines-ml-1m

Writes ``<output>/results.md``. The counts run in seconds; nothing is trained.
"""

import argparse
import platform
import time
from pathlib import Path

import recbole
import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.trainer import Trainer
from recbole.utils import init_seed

import recbole_selfattn
from recbole_selfattn.benchmark import cpu_name
from recbole_selfattn.benchmark.records import metric_label, portable_text
from recbole_selfattn.cli.main import command, exit_with
from recbole_selfattn.config import Config
from recbole_selfattn.data import create_dataset, data_preparation

WINDOWS = (1, 2, 3, 5, 10)
# (window, symmetric) of every row; window 0 is Pop
ROWS = ((0, False), *((w, False) for w in WINDOWS), *((w, True) for w in WINDOWS))
# The data pipeline a CE-trained sequential model gets; the scorers ignore the model.
PIPELINE_MODEL = "GRU4Rec"
TIE_BREAK = 1e-6  # popularity's weight: orders items with equal counts, never two different counts


def last_items(seq, length, window):
    """For ``back = 1..window``: the rows whose sequence has ``back`` items, and
    the ``back``-th last item of each."""
    for back in range(1, window + 1):
        rows = torch.nonzero(length >= back).squeeze(1)
        yield rows, seq[rows, length[rows] - back]


class CountScorer(SequentialRecommender):
    """Scores from training counts (``window`` 0: popularity alone; ``symmetric``:
    the counts of both directions). RecBole's evaluation calls ``full_sort_predict``;
    nothing is trained."""

    def __init__(self, config, dataset, window, symmetric=False):
        super().__init__(config, dataset)
        self.window = window
        self.placeholder = torch.nn.Parameter(torch.zeros(1))  # RecBole's Trainer builds an optimiser
        seq, length, target = (dataset.inter_feat[key] for key in (self.ITEM_SEQ, self.ITEM_SEQ_LEN, self.ITEM_ID))
        self.popularity = torch.bincount(target, minlength=self.n_items).float()
        self.transitions = self._transitions(seq, length, target) if window else None
        if symmetric and window:
            self.transitions = (self.transitions + self.transitions.t()).coalesce()

    def _transitions(self, seq, length, target):
        """The sparse ``[n_items, n_items]`` counts ``C^T[b, a]``: ``b`` within ``window`` items after ``a``."""
        earlier, later = [], []
        for rows, items in last_items(seq, length, self.window):
            earlier.append(items)
            later.append(target[rows])
        index = torch.stack([torch.cat(later), torch.cat(earlier)])
        ones = torch.ones(index.shape[1])
        return torch.sparse_coo_tensor(index, ones, (self.n_items, self.n_items), check_invariants=True).coalesce()

    def full_sort_predict(self, interaction):
        scores = TIE_BREAK * self.popularity.expand(len(interaction), -1)
        if self.transitions is None:
            return scores.clone()
        seq, length = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        recent = torch.zeros(len(seq), self.n_items)  # how often each item is among the last `window`
        for rows, items in last_items(seq, length, self.window):
            recent.index_put_((rows, items), torch.ones(len(rows)), accumulate=True)
        recent[:, 0] = 0  # the padding item
        return scores + (self.transitions @ recent.t()).t()

    def calculate_loss(self, interaction):
        raise NotImplementedError("count scorers are not trained")

    def predict(self, interaction):
        raise NotImplementedError("count scorers rank all items (full_sort_predict)")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--config_files", default="", help="protocol YAML files, comma- or space-separated")
    parser.add_argument("--output", required=True, help="folder of results.md")
    args, overrides = parser.parse_known_args(argv)
    args.config_files = [f for f in args.config_files.replace(",", " ").split() if f]
    args.overrides = overrides
    return args


def evaluate(config, train_data, loader, row):
    init_seed(config["seed"], config["reproducibility"])
    scorer = CountScorer(config, train_data._dataset, *row)
    trainer = Trainer(config, scorer)
    return dict(trainer.evaluate(loader, load_best_model=False, show_progress=False))


def markdown(argv, config, valid, test, chosen, metrics, seconds):
    label = {row: f"{'Symmetric' if row[1] else 'Window'}(W={row[0]})" for row in ROWS[1:]}
    label[ROWS[0]] = "Pop"
    names = [metric_label(m) for m in metrics]
    lines = [
        f"# Untrained baselines on {config['dataset']}", "",
        f"- command: `{' '.join(['python', 'benchmarks/plain_baselines.py', *argv])}`",
        f"- budget: no training; counts from the training split ({seconds:.0f} s for everything here)",
        f"- protocol: {config['eval_args']}, valid metric {config['valid_metric']}, "
        f"MAX_ITEM_LIST_LENGTH {config['MAX_ITEM_LIST_LENGTH']}",
        f"- machine: {cpu_name()}, CPU",
        f"- versions: Python {platform.python_version()}, torch {torch.__version__}, RecBole {recbole.__version__}, "
        f"recbole-selfattn {recbole_selfattn.__version__}",
        f"- chosen on validation {config['valid_metric']}: {label[chosen]}; test figures only for Pop and it",
        "", "| Row | " + " | ".join(f"valid {m}" for m in names) + " | " + " | ".join(f"test {m}" for m in names)
        + " |", "|---|" + "---:|" * (2 * len(metrics)),
    ]
    for row, result in valid.items():
        tested = test.get(row)
        cells = [f"{result[m]:.4f}" for m in metrics] + [f"{tested[m]:.4f}" if tested else "—" for m in metrics]
        name = f"**{label[row]}** (chosen)" if row == chosen else label[row]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _main(argv):
    args = parse_args(argv)
    start = time.perf_counter()
    config = Config(PIPELINE_MODEL, args.dataset, args.config_files, {"state": "WARNING"}, cmd_args=args.overrides)
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    key = config["valid_metric"].lower()
    valid = {row: evaluate(config, train_data, valid_data, row) for row in ROWS}
    chosen = max(ROWS[1:], key=lambda row: valid[row][key])
    test = {row: evaluate(config, train_data, test_data, row) for row in (ROWS[0], chosen)}
    cutoff = "@" + key.split("@")[1] if "@" in key else ""
    metrics = [metric for metric in valid[ROWS[0]] if metric.endswith(cutoff)]  # at the valid metric's cut-off
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    text = portable_text(markdown(argv, config, valid, test, chosen, metrics, time.perf_counter() - start))
    (output / "results.md").write_text(text)
    print(text)


def main(argv=None):
    return command(_main, __doc__, argv)


if __name__ == "__main__":
    exit_with(main)
