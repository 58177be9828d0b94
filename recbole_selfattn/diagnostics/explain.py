r"""What a trained model attends to, for one history: a heatmap (PNG) and the
same numbers as text.

* **AttRec**: the self-attention matrix :math:`s` over the last ``L`` items
  (rows: queries, columns: keys), as the paper's figures show it, from
  ``AttRec.attention_weights``: each real row sums to 1, the diagonal and the
  padded positions are 0.
* **MTAW**: the Interest Enhancing Layer's weights over the instant interests
  :math:`l_1 \dots l_m` (the query is :math:`l_m`; :math:`l_t` has read the
  items up to the t-th), from ``MTAW.interest_enhancing``.
* **MIND**: the routing weights :math:`w_{ij}` from each history item to each
  interest after the last routing iteration, from ``MIND.route``, and each
  valid interest's top items by :math:`u_j^\top e_i` (the max of these over
  the interests is MIND's score).

Every number comes from the model's own methods that ``forward`` uses. The
model is rebuilt from the checkpoint alone
(:class:`~recbole_selfattn.recommender.Recommender`); the history is given as
item tokens, as ``recommend()`` takes them::

    python -m recbole_selfattn.diagnostics.explain --checkpoint=saved/AttRec-....pth \
        --history=50,172,133,300,99 [--user=196] [--top_k=5] --output=DIR

writes ``DIR/<model>-explain.png`` and ``DIR/<model>-explain.txt`` and prints
the text.
"""

import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch

from recbole_selfattn.cli.main import command
from recbole_selfattn.diagnostics.heatmap import draw
from recbole_selfattn.errors import UsageError
from recbole_selfattn.recommender import Recommender
from recbole_selfattn.safe_write import atomic_open, write_text

USAGE = """\
usage: python -m recbole_selfattn.diagnostics.explain --checkpoint=FILE --history=TOKEN,TOKEN,...
                                                      --output=DIR [--user=TOKEN] [--top_k=N]

Draw what a trained AttRec, MTAW or MIND attends to for one history (item tokens
of its dataset, oldest first): AttRec's self-attention over its window, MTAW's
interest-enhancing weights over the instant interests, MIND's routing weights
and each interest's top N items (default 5). Writes DIR/<model>-explain.png and
DIR/<model>-explain.txt and prints the text. --user matters for the
recommendations of an AttRec with omega > 0."""


@dataclass
class Explanation:
    """A weight matrix with its row and column labels, and notes in words."""

    title: str
    weights: np.ndarray  # [rows, columns]
    rows: list
    columns: list
    row_axis: str
    column_axis: str
    notes: list = field(default_factory=list)

    def text(self):
        """The title, the matrix with 4 decimals, and the notes."""
        width = max(8, *(len(c) for c in self.columns))
        label_width = max(len(self.row_axis), *(len(r) for r in self.rows))
        header = f"{self.row_axis:<{label_width}} " + " ".join(f"{c:>{width}}" for c in self.columns)
        lines = [self.title, f"columns: {self.column_axis}", "", header]
        for label, row in zip(self.rows, self.weights):
            lines.append(f"{label:<{label_width}} " + " ".join(f"{v:>{width}.4f}" for v in row))
        return "\n".join(lines + [""] + self.notes) + "\n"


def _tokens(recommender, ids):
    """The item tokens of the ids ``ids`` (a tensor)."""
    dataset = recommender.dataset
    return [str(token) for token in dataset.id2token(dataset.iid_field, ids.cpu().numpy())]


def _attrec(model, interaction, tokens):
    """AttRec's self-attention matrix over its window of the last ``L`` items."""
    seq, length = interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]
    weights = model.attention_weights(seq, length)[0]
    window = ["(pad)"] * max(0, model.L - len(tokens)) + tokens[-model.L :]
    where = "before" if model.mask_before_softmax else "after"
    rows = "sums to 1" if model.mask_before_softmax else "sums to 1 less its diagonal weight, removed after the softmax"
    return Explanation(
        f"AttRec: self-attention over the last L={model.L} items (diagonal masked {where} the softmax)",
        weights.cpu().numpy(), window, window, "query item", "key items (oldest to newest)",
        [f"Each real row {rows}; the diagonal, padded positions and a lone item's row are 0."],
    )


def _mtaw(model, interaction, tokens):
    """MTAW's interest-enhancing weights over the instant interests ``l_1 .. l_m``."""
    _, weights = model.interest_enhancing(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    m = len(tokens)
    return Explanation(
        f"MTAW: interest-enhancing weights of O over the {m} instant interests (query l{m})",
        weights.cpu().numpy(), [f"O (query l{m})"], [f"l{t + 1}:{token}" for t, token in enumerate(tokens)],
        "trend", "instant interest l_t : the t-th item (l_t has read items 1..t)",
        ["The weights sum to 1."],
    )


def _mind(recommender, interaction, tokens, top_k):
    """MIND's routing weights from the history items to the interests, and each valid
    interest's ``top_k`` items."""
    model = recommender.model
    interests, mask, routing = model.route(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    valid = mask[0].tolist()
    scores = interests[0] @ model.item_embedding.weight.t()  # [K, n_items]: u_j . e_i
    scores[:, 0] = -torch.inf  # padding
    top = torch.topk(scores, min(top_k, scores.size(1) - 1), dim=1)
    notes = [f"Top {top.indices.size(1)} items of each valid interest (score u_j . e_i):"]
    for j, ok in enumerate(valid):
        if ok:
            items = _tokens(recommender, top.indices[j])
            notes.append(f"  interest {j + 1}: " + ", ".join(
                f"{t} ({s:.4f})" for t, s in zip(items, top.values[j].tolist())))
    if model.softmax_over_items:
        sums = "Each interest's routing weights sum to 1 over the history items"
    else:
        sums = "Each history item's routing weights sum to 1 over the valid interests"
    notes.append(f"{sums}; routing start at prediction: "
                 f"{'fixed' if model.fixed_eval_routing else 'random (another run differs)'}.")
    columns = [f"interest {j + 1}" + ("" if ok else " (invalid)") for j, ok in enumerate(valid)]
    return Explanation(
        f"MIND: routing weights w_ij from the {len(tokens)} history items to the interests ({sum(valid)} valid)",
        routing[0].cpu().numpy(), tokens, columns, "history item", "interest capsules", notes,
    )


MODELS = ("AttRec", "MTAW", "MIND")


@torch.no_grad()
def explain(recommender, history, user=None, top_k=5):
    """The :class:`Explanation` of ``history`` (item tokens, oldest first) by the
    model of ``recommender``, with its top ``top_k`` recommendations noted."""
    name = recommender.config["model"]
    if name not in MODELS:
        raise UsageError(
            f"The checkpoint holds a {name} model, which has no attention or routing map to draw: "
            f"give a checkpoint of {', '.join(MODELS)}."
        )
    model = recommender.model
    interaction = recommender.model_input(history, user)
    n = int(interaction[model.ITEM_SEQ_LEN][0])
    tokens = _tokens(recommender, interaction[model.ITEM_SEQ][0, :n])
    if name == "AttRec":
        explanation = _attrec(model, interaction, tokens)
    elif name == "MTAW":
        explanation = _mtaw(model, interaction, tokens)
    else:
        explanation = _mind(recommender, interaction, tokens, top_k)
    if n < len(history):
        explanation.notes.insert(0, f"The model reads the last {n} of the {len(history)} history items given.")
    explanation.notes.append(f"Top {top_k} recommendations: {', '.join(recommender.recommend(history, top_k, user))}")
    return explanation


def write(explanation, model_file, name, output):
    """Write ``<output>/<name>-explain.png`` and ``.txt``; return the text."""
    text = f"checkpoint: {model_file}\n{explanation.text()}"
    if os.path.exists(output) and not os.path.isdir(output):
        raise UsageError(f"--output={output} is a file: give a folder for the picture and the text.")
    stem = os.path.join(output, f"{name}-explain")
    try:
        with atomic_open(stem + ".png", "wb") as f:
            draw(explanation, f)
        write_text(stem + ".txt", text)
    except OSError as e:
        raise UsageError(
            f"Cannot write into --output={output} ({e.strerror}): give a folder you can write to."
        ) from None
    return text


def parse_args(argv):
    """``{"checkpoint", "history", "output", "user", "top_k"}`` from ``--key=value`` arguments."""
    args = {"user": None, "top_k": "5"}
    for arg in argv:
        key, has_value, value = arg.partition("=")
        if not (key.startswith("--") and has_value and key[2:] in ("checkpoint", "history", "output", "user", "top_k")):
            raise UsageError(
                f"Unrecognised argument '{arg}': the options are --checkpoint=FILE, --history=TOKEN,TOKEN,..., "
                "--output=DIR, --user=TOKEN and --top_k=N. Run with --help for usage."
            )
        args[key[2:]] = value
    missing = [f"--{key}" for key in ("checkpoint", "history", "output") if not args.get(key)]
    if missing:
        raise UsageError(f"Missing {', '.join(missing)}: pass --checkpoint=saved/<model>-....pth, "
                         "--history=TOKEN,TOKEN,... (item tokens, oldest first) and --output=DIR.")
    if not (args["top_k"].isdigit() and int(args["top_k"]) >= 1):
        raise UsageError(f"--top_k={args['top_k']} is invalid: give the number of items to list, an integer >= 1.")
    args["top_k"] = int(args["top_k"])
    args["history"] = [token.strip() for token in args["history"].split(",") if token.strip()]
    return args


def _print_explanation(argv):
    args = parse_args(argv)
    recommender = Recommender(args["checkpoint"])
    explanation = explain(recommender, args["history"], args["user"], args["top_k"])
    print(write(explanation, args["checkpoint"], recommender.config["model"], args["output"]), end="")


def main(argv=None):
    """Entry point; returns the process exit status (2 for bad input)."""
    return command(_print_explanation, USAGE, argv)


if __name__ == "__main__":
    sys.exit(main())
