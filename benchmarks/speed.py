"""Training speed: seconds per epoch of AttRec, MTAW, MIND, SASRec, GRU4Rec and Caser.

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

Speed options (:mod:`recbole_selfattn.acceleration`, as the trainer applies
them): ``--options=none,recbole,bf16,compile,bf16+compile`` times every model under
each, all in the same interleaved rounds; a row's "faster than SASRec" is
against SASRec under the same options, "vs none" against the same model
without options, "vs RecBole's SASRec" against SASRec under ``recbole``
(``--fast_path=False``: RecBole's own code and glibc's default allocation,
where the default runs RecBole's Transformer models on the fast path of
``recbole_selfattn/fastpath`` and every model with freed memory kept in the
process, ``recbole_selfattn/fastpath/allocator.py``, and a fused Adam,
``recbole_selfattn/fastpath/optimizer.py``).
``--valid_epochs=N`` then trains each of ``--valid_models``
for N epochs per option (``recbole_selfattn.quick_start.run``, same seed) and
reports its best validation metric: the options' effect on quality, from a
short run.

FLOP floor (every model above): the matrix-product FLOPs of one training step
(``benchmarks/speed_flops.py`` gives the formulas) divided by the fp32
``torch.mm`` rate measured here on ``--mm_size`` square matrices; ``measured /
floor`` says how far above it a model is.

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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import recbole  # noqa: E402
import torch
from recbole.utils import init_seed

from recbole_selfattn import acceleration, quick_start
from recbole_selfattn.benchmark import cpu_name
from recbole_selfattn.config import Config
from recbole_selfattn.data import create_dataset, data_preparation
from recbole_selfattn.fastpath import allocator
from recbole_selfattn.fastpath import optimizer as fused_optimizer
from recbole_selfattn.utils import get_model
from speed_flops import step_flops  # noqa: E402

DEFAULT_MODELS = ("AttRec", "MTAW", "MIND", "SASRec", "GRU4Rec", "Caser")
REFERENCE = "SASRec"
OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
}
# option name -> config overrides; "a+b" combines them
OPTIONS = {"none": {}, "recbole": {"fast_path": False}, "bf16": {"mixed_precision": "bf16"}, "compile": {"compile": True}}
COLUMNS = (
    "model", "options", "params", "batches/epoch", "s/batch", "s/epoch (est.)", "faster than SASRec (x)",
    "vs RecBole's SASRec (x)", "vs none (x)", "GFLOP/epoch", "floor s/epoch", "measured / floor", "valid metric",
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
    parser.add_argument("--options", default="none", help="speed options to time, comma-separated, from none, bf16, "
                        "compile and their combination bf16+compile (default: none)")
    parser.add_argument("--valid_epochs", type=int, default=0, help="epochs of the validation runs (default: 0, none)")
    parser.add_argument("--valid_models", default="MTAW,AttRec", help="models given validation runs (default: %(default)s)")
    args, overrides = parser.parse_known_args(argv)
    if args.batches < 1 or args.warmup < 0 or not 1 <= args.rounds <= args.batches or args.valid_epochs < 0:
        parser.error("need --batches >= 1, --warmup >= 0, 1 <= --rounds <= --batches and --valid_epochs >= 0")
    args.models = [m for m in args.models.split(",") if m]
    args.valid_models = [m for m in args.valid_models.split(",") if m]
    args.options = [o for o in args.options.split(",") if o]
    unknown = [o for o in args.options if not set(o.split("+")) <= set(OPTIONS)]
    if unknown or not args.options:
        parser.error(f"unknown --options {unknown}: give some of none, recbole, bf16, compile, bf16+compile")
    args.config_files = [f for f in args.config_files.replace(",", " ").split() if f]
    args.overrides = {}
    for item in overrides:
        key, eq, value = item.partition("=")
        if not key.startswith("--") or not eq:
            parser.error(f"unrecognised argument {item!r}: overrides are --KEY=VALUE")
        args.overrides[key[2:]] = value
    return args


def option_overrides(option):
    """The config overrides of an ``--options`` entry, e.g. ``bf16+compile``."""
    overrides = {}
    for name in option.split("+"):
        overrides.update(OPTIONS[name])
    return overrides


def matmul_gflops(size, repeats=3, dtype=torch.float32):
    """Best ``torch.mm`` rate of ``size x size`` matrices, GFLOP/s, on the current threads."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def run_arguments(name, option, args):
    """The config files and ``--key=value`` arguments of ``name`` under ``option``."""
    config_files = list(args.config_files)
    if args.model_configs and os.path.isfile(os.path.join(args.model_configs, f"{name}.yaml")):
        config_files.append(os.path.join(args.model_configs, f"{name}.yaml"))
    overrides = {"show_progress": False, "state": "WARNING", "use_gpu": False, **args.overrides,
                 **option_overrides(option)}
    return config_files, [f"--{k}={v}" for k, v in overrides.items()]


class Runner:
    """One model under one speed option, its training loader and optimiser;
    :meth:`step` trains on the next batch. ``train_data``: a loader of the
    same model built before (the data does not depend on the option)."""

    def __init__(self, name, option, args, train_data=None):
        config_files, cmd_args = run_arguments(name, option, args)
        config = Config(name, args.dataset, config_files, cmd_args=cmd_args)
        init_seed(config["seed"], config["reproducibility"])
        if train_data is None:
            train_data = data_preparation(config, create_dataset(config))[0]
        init_seed(config["seed"], config["reproducibility"])
        self.name, self.option, self.config, self.train_data = name, option, config, train_data
        self.model = get_model(name)(config, train_data._dataset).to(config["device"])
        if config["compile"]:
            acceleration.compile_trainer_calls(self.model)
        self.valid_score = None
        learner, lr, decay = config["learner"], config["learning_rate"], config["weight_decay"] or 0
        if fused_optimizer.applies(self.model.fast_path, learner):  # as the trainer builds it
            self.optimizer = fused_optimizer.build(self.model.parameters(), learner, lr, decay)
        else:
            self.optimizer = OPTIMIZERS.get(learner.lower(), torch.optim.Adam)(self.model.parameters(), lr=lr, weight_decay=decay)
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
        # the allocator is per process: set it for this runner's option (fastpath/allocator.py)
        allocator.retain_freed_memory(self.model.fast_path)
        self.model.train()
        start = time.perf_counter()
        interaction = self._next_batch().to(self.config["device"])
        self.optimizer.zero_grad()
        with acceleration.autocast(self.config["device"], self.config["mixed_precision"]):
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


def _epoch_seconds(runner):
    return runner.seconds / runner.timed * runner.batches_per_epoch


def table(args, argv, runners, rates, loads):
    rows = []
    epochs = {(r.name, r.option): _epoch_seconds(r) for r in runners}
    for r in sorted(runners, key=lambda r: (args.models.index(r.name), args.options.index(r.option))):
        epoch = epochs[r.name, r.option]
        gflop = floor = ratio = None
        if r.flops is not None:
            gflop = r.flops / r.timed * r.batches_per_epoch / 1e9
            floor = gflop / rates["fp32"]
            ratio = epoch / floor
        reference, plain = epochs.get((REFERENCE, r.option)), epochs.get((r.name, "none"))
        recbole_reference = epochs.get((REFERENCE, "recbole"))
        rows.append([r.name, r.option, fmt(r.params), fmt(r.batches_per_epoch), fmt(r.seconds / r.timed, 3),
                     fmt(epoch, 1), fmt(reference and reference / epoch),
                     fmt(recbole_reference and recbole_reference / epoch), fmt(plain and plain / epoch),
                     fmt(gflop, 1), fmt(floor, 2), fmt(ratio, 1), fmt(r.valid_score, 4)])
    config = runners[0].config
    lines = [
        f"# Training speed on {args.dataset} (CPU)",
        "",
        f"- command: `{command_line(argv)}`",
        f"- machine: {cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
        f"fp32 matmul rate {rates['fp32']:,.1f} GFLOP/s, bf16 {rates['bf16']:,.1f} GFLOP/s "
        f"(best `torch.mm` of {args.mm_size}x{args.mm_size}); load average (1 min) {loads[0]:.2f} before the "
        f"timed rounds, {loads[1]:.2f} after (the machine may be shared)",
        f"- versions: Python {platform.python_version()}, torch {torch.__version__}, RecBole {recbole.__version__}",
        f"- budget: {args.batches} timed training batches per model and option (after {args.warmup} untimed), "
        f"in {args.rounds} interleaved rounds; s/epoch = mean s/batch x batches/epoch (extrapolated)",
        f"- setting: train_batch_size {config['train_batch_size']}, embedding_size {config['embedding_size']}, "
        f"MAX_ITEM_LIST_LENGTH {config['MAX_ITEM_LIST_LENGTH']}, {config['device']}",
        "- options: none (the defaults: RecBole's Transformer models on the fast path of "
        "`recbole_selfattn/fastpath/`, every model with freed memory kept in the process and a fused Adam); "
        "recbole = `--fast_path=False` (RecBole's own code and Adam, glibc's default allocation); bf16 = "
        "`--mixed_precision=bf16`; compile = `--compile=True` (`recbole_selfattn/acceleration.py`); faster than "
        "SASRec: against SASRec under the same options; vs RecBole's SASRec: against SASRec under `recbole`; "
        "vs none: against the same model without options",
        "- floor: matmul FLOPs of a training step (3 x forward; formulas in `benchmarks/speed_flops.py`) / the fp32 "
        "matmul rate, for every option; — for models without a count",
        f"- valid metric: best validation {config['valid_metric']} of a {args.valid_epochs}-epoch run "
        "(run.py's training, same seed) per model and option; — where none ran",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def build_runners(args):
    """A runner per model and option; the options of one model share its training data."""
    runners, data = [], {}
    for name in args.models:
        for option in args.options:
            runner = Runner(name, option, args, data.get(name))
            data[name] = runner.train_data
            runners.append(runner)
    return runners


def validate(runner, args):
    """``runner.valid_score``: the best validation score of a short run of its model and option."""
    config_files, cmd_args = run_arguments(runner.name, runner.option, args)
    result = quick_start.run(runner.name, args.dataset, config_files, saved=False,
                             cmd_args=cmd_args + [f"--epochs={args.valid_epochs}"])
    runner.valid_score = float(result["best_valid_score"])


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    # every model and option compiles its own versions of the same methods
    torch._dynamo.config.recompile_limit = 64
    runners = build_runners(args)
    rates = {"fp32": matmul_gflops(args.mm_size), "bf16": matmul_gflops(args.mm_size, dtype=torch.bfloat16)}
    for runner in runners:
        for _ in range(args.warmup):
            runner.step(timed=False)
    loads = [os.getloadavg()[0]]
    per_round = [args.batches // args.rounds + (i < args.batches % args.rounds) for i in range(args.rounds)]
    for count in per_round:
        for runner in runners:
            for _ in range(count):
                runner.step(timed=True)
    loads.append(os.getloadavg()[0])
    for runner in runners:
        if args.valid_epochs and runner.name in args.valid_models:
            validate(runner, args)
    text = table(args, argv, runners, rates, loads)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"{args.dataset}.md"
    path.write_text(text)
    print(text)
    print(f"written to {path}")
    return path


if __name__ == "__main__":
    main()
