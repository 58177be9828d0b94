r"""Diagnostics of a trained MIND: are its interests distinct, is its label-aware
attention selective, and does its evaluation repeat?

Li et al., "Multi-Interest Network with Dynamic Routing for Recommendation at
Tmall", CIKM 2019 (``docs/models.md``, "MIND"). For the users of an evaluation
set, with their interest capsules :math:`u_1 \dots u_{K'_u}` (B2I routing, the
valid ones only) and the target item :math:`e_t`:

* :func:`interest_diversity`: the mean pairwise cosine similarity of each
  user's valid interests, averaged over the users with at least two. 1 means
  the interests collapsed into one direction (what all-zero routing logits
  give), 0 that they are orthogonal.
* :func:`attention_entropy`: the entropy (nats) of the label-aware attention
  weights :math:`\mathrm{softmax}_j(\mathrm{pow}(u_j^\top e_t, p))` over the
  valid interests, or that entropy divided by :math:`\log K'_u`: 1 is uniform
  attention (``pow_p: 0``), 0 one interest alone (large ``p``).
* :func:`metric_spread`: min, max and standard deviation of each metric over
  repeated evaluations of one model; 0 unless prediction is random
  (``routing_init_eval: random``).

:func:`capture` takes the interests and attention weights from the model's own
``forward`` and ``label_attention``. The command reads a checkpoint
weights-only (:class:`~recbole_selfattn.recommender.Recommender`), rebuilds the
run's dataset from the checkpoint's config (the dataset files must be where
the training run found them) and prints the three measures on the test split::

    python -m recbole_selfattn.diagnostics.mind --checkpoint=saved/MIND-....pth [--repeats=3]
"""

import os
import statistics

import torch
import torch.nn.functional as F
from recbole.data.dataloader import FullSortEvalDataLoader

from recbole_selfattn import checkpoint
from recbole_selfattn.checkpoint import CheckpointError
from recbole_selfattn.cli.args import parse_args as parse_command_line
from recbole_selfattn.cli.main import command, exit_with
from recbole_selfattn.config import Config
from recbole_selfattn.data import create_dataset, data_preparation
from recbole_selfattn.errors import UsageError
from recbole_selfattn.recommender import Recommender
from recbole_selfattn.trainer import token_vocabulary
from recbole_selfattn.utils import get_trainer

USAGE = """\
usage: python -m recbole_selfattn.diagnostics.mind --checkpoint=FILE [--repeats=N]

Interest diversity, label-aware attention entropy and the spread of the metrics
over N evaluations (default 3) of a trained MIND checkpoint, on its test split.
Run it where the training run ran: the dataset is rebuilt from the checkpoint's
data_path."""

# Keys RecBole's Config derives from the others; data_path has the dataset
# folder joined to it, and train_neg_sample_args is expanded.
_DERIVED_KEYS = {
    "model", "dataset", "data_path", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "device", "single_spec",
    "local_rank", "valid_metric_bigger", "train_neg_sample_args", "valid_neg_sample_args", "test_neg_sample_args",
    "checkpoint",
}


def _valid(n_valid, k):
    """``[B, K]`` bool, True for each user's first ``n_valid`` interests."""
    return torch.arange(k, device=n_valid.device).unsqueeze(0) < n_valid.unsqueeze(1)


def interest_diversity(interests, n_valid):
    """Mean pairwise cosine similarity of the valid interests.

    Args:
        interests (torch.Tensor): interest capsules, ``[B, K, d]``.
        n_valid (torch.Tensor): each user's number of valid interests ``K'_u``, ``[B]``;
            the first ``K'_u`` capsules are the valid ones.

    Returns:
        float: the mean over the users with ``K'_u >= 2`` of the mean cosine over
        their interest pairs (an all-zero capsule has cosine 0); NaN without such users.
    """
    k = interests.size(1)
    valid = _valid(n_valid, k)
    unit = F.normalize(interests.double(), dim=-1)
    cosine = unit @ unit.transpose(1, 2)  # [B, K, K]
    upper = torch.ones(k, k, dtype=torch.bool, device=interests.device).triu(1)
    pairs = valid.unsqueeze(2) & valid.unsqueeze(1) & upper
    n_pairs = pairs.sum(dim=(1, 2))
    users = n_pairs > 0
    if not users.any():
        return float("nan")
    per_user = (cosine * pairs).sum(dim=(1, 2))[users] / n_pairs[users]
    return per_user.mean().item()


def attention_entropy(weights, n_valid, normalised=False):
    """Entropy of the label-aware attention weights over the valid interests.

    Args:
        weights (torch.Tensor): attention weights, ``[B, K]``, summing to 1 over
            each user's valid interests (``MIND.label_attention``).
        n_valid (torch.Tensor): each user's number of valid interests ``K'_u``, ``[B]``.
        normalised (bool): divide each user's entropy by ``log K'_u``.

    Returns:
        float: the mean entropy in nats over all users (0 for ``K'_u = 1``), or with
        ``normalised`` the mean normalised entropy over the users with ``K'_u >= 2``
        (NaN without such users).
    """
    valid = _valid(n_valid, weights.size(1))
    entropy = torch.special.entr(weights.double().masked_fill(~valid, 0.0)).sum(dim=1)  # entr(0) = 0
    if not normalised:
        return entropy.mean().item()
    users = n_valid >= 2
    if not users.any():
        return float("nan")
    return (entropy[users] / n_valid[users].double().log()).mean().item()


@torch.no_grad()
def capture(model, eval_data):
    """The interests, valid-interest counts and label-aware attention weights
    (with the true next item as target) of every user of ``eval_data``.

    The model is put in ``eval()`` mode, so routing starts as at prediction.

    Args:
        model (MIND): a trained model.
        eval_data (FullSortEvalDataLoader): a full-ranking validation or test loader.

    Returns:
        tuple: interests ``[N, K, d]``, ``n_valid`` ``[N]``, weights ``[N, K]``.
    """
    if not isinstance(eval_data, FullSortEvalDataLoader):
        raise UsageError(
            f"MIND diagnostics need full-ranking evaluation data (eval_args mode: full), not a "
            f"{type(eval_data).__name__}: each user must appear once, with the true next item."
        )
    model.eval()
    device = eval_data.config["device"]
    interests, n_valid, weights = [], [], []
    for interaction, *_ in eval_data:
        interaction = interaction.to(device)
        capsules, mask = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
        target = model.item_embedding(interaction[model.POS_ITEM_ID])
        interests.append(capsules)
        n_valid.append(mask.sum(dim=1))
        weights.append(model.label_attention(capsules, mask, target))
    return torch.cat(interests), torch.cat(n_valid), torch.cat(weights)


def metric_spread(model, eval_data, repeats=3):
    """Evaluate ``model`` on ``eval_data`` ``repeats`` times with the trainer's
    ``evaluate`` (RecBole's Evaluator, the configured metrics).

    Returns:
        dict: ``{metric: {"min": ..., "max": ..., "std": ...}}``, the population standard
        deviation computed exactly (0.0 when every evaluation agrees).
    """
    config = eval_data.config
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    results = [trainer.evaluate(eval_data, load_best_model=False) for _ in range(repeats)]
    spread = {}
    for metric in results[0]:
        values = [float(result[metric]) for result in results]
        spread[metric] = {"min": min(values), "max": max(values), "std": statistics.pstdev(values)}
    return spread


def _run_config(saved):
    """The training run's ``Config`` rebuilt from a checkpoint's plain config."""
    given = {key: value for key, value in saved.items() if key not in _DERIVED_KEYS}
    given["data_path"] = os.path.dirname(saved["data_path"])
    negatives = saved["train_neg_sample_args"]
    given["train_neg_sample_args"] = None if negatives["distribution"] == "none" else negatives
    return Config(saved["model"], saved["dataset"], config_dict=given, cmd_args=[])


def load(model_file):
    """A MIND checkpoint's model and the test loader of its dataset.

    Raises:
        UsageError: the file is not a readable recbole-selfattn checkpoint, not a
            MIND one, or the dataset's tokens differ from those it was trained on.
    """
    saved = checkpoint.load(model_file)["config"]
    if saved.get("model") != "MIND":
        raise UsageError(
            f"Checkpoint {model_file} holds a {saved.get('model')} model, not MIND: give a .pth file "
            "saved by training MIND (saved/MIND-....pth)."
        )
    config = _run_config(saved)
    recommender = Recommender(model_file, device=str(config["device"]))
    dataset = create_dataset(config)
    trained_on = {field: [str(t) for t in tokens] for field, tokens in recommender.dataset.field2id_token.items()}
    if token_vocabulary(dataset) != trained_on:
        raise CheckpointError(
            f"The dataset at {config['data_path']} has other user or item tokens than checkpoint {model_file} "
            "was trained on (the files changed), so its ids would stand for other items: evaluate on the data "
            "it was trained on."
        )
    _, _, test_data = data_preparation(config, dataset)
    return recommender.model, test_data


def report(model_file, repeats=3):
    """The three measures of a MIND checkpoint on its test split, as a small table."""
    model, test_data = load(model_file)
    interests, n_valid, weights = capture(model, test_data)
    spread = metric_spread(model, test_data, repeats)
    users, multi = len(n_valid), int((n_valid >= 2).sum())
    config = test_data.config
    measures = [
        ("interest diversity (mean pairwise cosine)", interest_diversity(interests, n_valid),
         f"{multi} users with >= 2 valid interests"),
        ("attention entropy (nats)", attention_entropy(weights, n_valid), f"mean over {users} users"),
        ("attention entropy / log K'_u", attention_entropy(weights, n_valid, normalised=True),
         f"{multi} users with >= 2 valid interests"),
    ]
    lines = [
        f"MIND diagnostics of {model_file}",
        f"dataset {config['dataset']}, test split: {users} users; "
        f"routing_init_eval: {config['routing_init_eval']}; {repeats} evaluations",
        "",
        f"{'measure':<42} {'value':>7}",
        *(f"{name:<42} {value:7.4f}   {note}" for name, value, note in measures),
        "",
        f"{'metric':<14} {'min':>7} {'max':>7} {'std':>7}",
    ]
    lines += [f"{m:<14} {s['min']:7.4f} {s['max']:7.4f} {s['std']:7.4f}" for m, s in spread.items()]
    return "\n".join(lines)


def parse_args(argv):
    """``(checkpoint file, repeats)`` from ``--checkpoint=FILE [--repeats=N]``."""
    try:
        options, _ = parse_command_line(argv, {"checkpoint": None, "repeats": "3"}, recbole=False)
    except UsageError as e:
        raise UsageError(f"{e} The options are --checkpoint=FILE and --repeats=N.") from None
    value = options["repeats"]
    if not (value.isdigit() and int(value) >= 1):
        raise UsageError(f"--repeats={value} is invalid: give the number of evaluations, an integer >= 1.")
    if not options["checkpoint"]:
        raise UsageError("No checkpoint given: pass --checkpoint=saved/MIND-....pth (a file saved by training MIND).")
    return options["checkpoint"], int(value)


def _diagnose(argv):
    print(report(*parse_args(argv)))


def main(argv=None):
    """Entry point; returns the process exit status (2 for bad input)."""
    return command(_diagnose, USAGE, argv)


if __name__ == "__main__":
    exit_with(main)
