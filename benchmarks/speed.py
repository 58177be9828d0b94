"""Training speed: seconds per epoch of AttRec, MTAW, MIND, SASRec and GRU4Rec.

Every model is built in this one process on the same dataset, protocol,
batch size, ``embedding_size`` (SASRec's and GRU4Rec's ``hidden_size``) and
``MAX_ITEM_LIST_LENGTH``, from its property file, the ``--config_files``, the
``--model_configs`` folder (``DIR/<Model>.yaml`` where present) and the
``--KEY=VALUE`` overrides, exactly as ``run.py`` and
``python -m recbole_selfattn.benchmark`` build them. Each model then trains
(``calculate_loss``, ``backward``, optimiser step, the batch's loading
included, as in RecBole's ``Trainer._train_epoch``) on ``--batches`` batches
of a shuffled training epoch, after ``--warmup`` untimed ones. The timed
batches are split into ``--rounds`` rounds and the models take turns within
each round, so a change of machine load hits every model alike. Seconds per
epoch = mean seconds per timed batch x the epoch's batch count (stated in the
table: an extrapolation, not a full epoch).

FLOP floor (plugin models): the matrix-product FLOPs of one training step,
counted on each timed batch (2 FLOPs per multiply-add; backward = 2 x forward,
so a step is 3 x the forward count), divided by the fp32 ``torch.mm`` rate
measured here on ``--mm_size`` square matrices. With ``B`` the batch, ``T``
its longest sequence (the models cut the padding after it), ``d`` the
embedding size, ``N`` the number of item ids (``n_items``, padding included):

* MTAW: ``3 B [n_layers (6 T d^2 + 4 T^2 d) + 2 d^2 + 4 T d + 2 (N - 1) d]``
  (per ITL: query and two FFN layers, ``Q K^T`` and ``A V`` over the causal
  ``T x T``; IEL: query and attention; scores against the ``N - 1`` real items);
* MIND: ``3 B [2 T d^2 + (2 r - 1) 2 T K d + 2 K d + m 2 K d^2 + 2 N d]``
  (``S c_i``; ``r`` routing iterations of ``z_j`` and ``r - 1`` logit updates
  over ``K`` interests; label-aware attention; ``m = 1`` with the interest MLP;
  CE scores against all ``N`` items, or ``4 d`` for BPR's two scores);
* AttRec: ``3 B [2 q L d^2 + 4 L^2 d + 2 T (1 + n) d (1 + [omega > 0])]``
  (``q`` = 1 shared or 2 separate Q/K projections over the window ``L``;
  attention; distances to ``T`` targets and ``n`` negatives each).

The score product ``B x d x N`` dominates MTAW and MIND on large catalogues.
Element-wise work (softmax, normalisation, dropout) is not counted, so the
floor is a lower bound; ``measured / floor`` says how far above it a model is.

Commands for the committed tables (data under ``dataset/``, see
``dataset/README.md``; ml-100k is bundled with RecBole)::

    python benchmarks/speed.py --dataset=ml-100k --batches=20
    python benchmarks/speed.py --dataset=ml-1m --config_files=recbole_selfattn/properties/benchmark/ml-1m.yaml \\
        --model_configs=recbole_selfattn/properties/benchmark/ml-1m --batches=20
    python benchmarks/speed.py --dataset=tmall --config_files=recbole_selfattn/properties/benchmark/session.yaml \\
        --train_batch_size=512 --batches=20

Each writes ``<output>/<dataset>.md`` (default ``results/speed-cpu``).
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmark this checkout's package

import recbole  # noqa: E402
import torch
from recbole.utils import init_seed

from recbole_selfattn.benchmark import cpu_name
from recbole_selfattn.config import Config
from recbole_selfattn.data import create_dataset, data_preparation
from recbole_selfattn.utils import get_model

DEFAULT_MODELS = ("AttRec", "MTAW", "MIND", "SASRec", "GRU4Rec")
REFERENCE = "SASRec"
OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
}
COLUMNS = (
    "model", "params", "batches/epoch", "s/batch", "s/epoch (est.)", "faster than SASRec (x)",
    "GFLOP/epoch", "floor s/epoch", "measured / floor",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="Any other --KEY=VALUE is a config override for every model."
    )
    parser.add_argument("--dataset", default="ml-100k", help="dataset under data_path (default: ml-100k)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--config_files", default="", help="protocol YAML files, comma- or space-separated")
    parser.add_argument("--model_configs", default=None, help="folder of per-model YAMLs (<Model>.yaml)")
    parser.add_argument("--batches", type=int, default=20, help="timed training batches per model (default: 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per model first (default: 2)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds the timed batches are split into (default: 2)")
    parser.add_argument("--mm_size", type=int, default=2048, help="side of the torch.mm measuring the matmul rate")
    parser.add_argument("--output", default="results/speed-cpu", help="folder of the table (default: %(default)s)")
    args, overrides = parser.parse_known_args(argv)
    if args.batches < 1 or args.warmup < 0 or not 1 <= args.rounds <= args.batches:
        parser.error("need --batches >= 1, --warmup >= 0 and 1 <= --rounds <= --batches")
    args.models = [m for m in args.models.split(",") if m]
    args.config_files = [f for f in args.config_files.replace(",", " ").split() if f]
    args.overrides = {}
    for item in overrides:
        key, eq, value = item.partition("=")
        if not key.startswith("--") or not eq:
            parser.error(f"unrecognised argument {item!r}: overrides are --KEY=VALUE")
        args.overrides[key[2:]] = value
    return args


def matmul_gflops(size, repeats=3):
    """Best fp32 ``torch.mm`` rate of ``size x size`` matrices, GFLOP/s, on the current threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _longest(model, interaction):
    return int(interaction[model.ITEM_SEQ_LEN].max())


def step_flops(name, model, interaction):
    """Matrix-product FLOPs of one training step (3 x forward) on ``interaction``; see the
    module docstring. ``None`` for models without a count (the baselines)."""
    if name not in ("MTAW", "MIND", "AttRec"):
        return None
    batch = len(interaction)
    d, n = model.embedding_size, model.n_items
    if name == "MTAW":
        t = _longest(model, interaction)
        per_row = model.n_layers * (6 * t * d * d + 4 * t * t * d) + 2 * d * d + 4 * t * d + 2 * (n - 1) * d
    elif name == "MIND":
        t, k, r = _longest(model, interaction), model.interest_num, model.routing_iters
        mlp = 2 * k * d * d if isinstance(model.interest_layer, torch.nn.Sequential) else 0
        scores = 4 * d if model.loss_type == "BPR" else 2 * n * d
        per_row = 2 * t * d * d + (2 * r - 1) * 2 * t * k * d + 2 * k * d + mlp + scores
    else:
        projections = 1 if model.key_proj is model.query_proj else 2
        tables = 2 if model.omega > 0 else 1
        per_row = 2 * projections * model.L * d * d + 4 * model.L**2 * d
        per_row += 2 * model.T * (1 + model.neg_samples) * d * tables
    return 3 * batch * per_row


class Runner:
    """One model, its training loader and optimiser; :meth:`step` trains on the next batch."""

    def __init__(self, name, args):
        config_files = list(args.config_files)
        if args.model_configs and os.path.isfile(os.path.join(args.model_configs, f"{name}.yaml")):
            config_files.append(os.path.join(args.model_configs, f"{name}.yaml"))
        overrides = {"show_progress": False, "state": "WARNING", "use_gpu": False, **args.overrides}
        cmd_args = [f"--{k}={v}" for k, v in overrides.items()]
        config = Config(name, args.dataset, config_files, cmd_args=cmd_args)
        init_seed(config["seed"], config["reproducibility"])
        train_data = data_preparation(config, create_dataset(config))[0]
        init_seed(config["seed"], config["reproducibility"])
        self.name, self.config, self.train_data = name, config, train_data
        self.model = get_model(name)(config, train_data._dataset).to(config["device"])
        learner = OPTIMIZERS.get(config["learner"].lower(), torch.optim.Adam)
        self.optimizer = learner(self.model.parameters(), lr=config["learning_rate"], weight_decay=config["weight_decay"] or 0)
        self.batches_per_epoch = len(train_data)
        self.params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self.seconds, self.flops, self.timed = 0.0, 0, 0
        self._batches = iter(())

    def _next_batch(self):
        try:
            return next(self._batches)
        except StopIteration:
            self._batches = iter(self.train_data)
            return next(self._batches)

    def step(self, timed):
        self.model.train()
        start = time.perf_counter()
        interaction = self._next_batch().to(self.config["device"])
        self.optimizer.zero_grad()
        loss = self.model.calculate_loss(interaction)
        loss.backward()
        if self.config["clip_grad_norm"]:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), **self.config["clip_grad_norm"])
        self.optimizer.step()
        elapsed = time.perf_counter() - start
        if not torch.isfinite(loss):
            raise RuntimeError(f"{self.name}: non-finite training loss {loss.item()}")
        if timed:
            self.seconds += elapsed
            self.timed += 1
            flops = step_flops(self.name, self.model, interaction)
            self.flops = None if flops is None else self.flops + flops


def _relative(arg):
    key, eq, value = arg.partition("=")
    if eq and os.path.isabs(value):
        return f"{key}={os.path.relpath(value)}"
    return os.path.relpath(arg) if os.path.isabs(arg) else arg


def command_line(argv):
    return " ".join(["python", "benchmarks/speed.py"] + [_relative(a) for a in argv])


def fmt(value, digits=2):
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def table(args, argv, runners, gflops):
    rows = []
    reference = next((r for r in runners if r.name == REFERENCE), None)
    ref_epoch = reference.seconds / reference.timed * reference.batches_per_epoch if reference else None
    for r in runners:
        per_batch = r.seconds / r.timed
        epoch = per_batch * r.batches_per_epoch
        gflop = floor = ratio = None
        if r.flops is not None:
            gflop = r.flops / r.timed * r.batches_per_epoch / 1e9
            floor = gflop / gflops
            ratio = epoch / floor
        faster = ref_epoch / epoch if ref_epoch else None
        rows.append([r.name, fmt(r.params), fmt(r.batches_per_epoch), fmt(per_batch, 3), fmt(epoch, 1),
                     fmt(faster), fmt(gflop, 1), fmt(floor, 2), fmt(ratio, 1)])
    config = runners[0].config
    lines = [
        f"# Training speed on {args.dataset} (CPU)",
        "",
        f"- command: `{command_line(argv)}`",
        f"- machine: {cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
        f"fp32 matmul rate {gflops:,.1f} GFLOP/s (best `torch.mm` of {args.mm_size}x{args.mm_size})",
        f"- versions: Python {platform.python_version()}, torch {torch.__version__}, RecBole {recbole.__version__}",
        f"- budget: {args.batches} timed training batches per model (after {args.warmup} untimed), "
        f"in {args.rounds} interleaved rounds; s/epoch = mean s/batch x batches/epoch (extrapolated)",
        f"- setting: train_batch_size {config['train_batch_size']}, embedding_size {config['embedding_size']}, "
        f"MAX_ITEM_LIST_LENGTH {config['MAX_ITEM_LIST_LENGTH']}, {config['device']}",
        "- floor: matmul FLOPs of a training step (3 x forward; formulas in `benchmarks/speed.py`) / the matmul rate; "
        "— for the RecBole baselines",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(COLUMNS))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    runners = [Runner(name, args) for name in args.models]
    gflops = matmul_gflops(args.mm_size)
    for runner in runners:
        for _ in range(args.warmup):
            runner.step(timed=False)
    per_round = [args.batches // args.rounds + (i < args.batches % args.rounds) for i in range(args.rounds)]
    for count in per_round:
        for runner in runners:
            for _ in range(count):
                runner.step(timed=True)
    text = table(args, argv, runners, gflops)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"{args.dataset}.md"
    path.write_text(text)
    print(text)
    print(f"written to {path}")
    return path


if __name__ == "__main__":
    main()
