"""Seconds per training epoch of MTAW and RecBole's SASRec on the same data.

Both models train in this one process through
:func:`recbole_selfattn.quick_start.run`, with the same dataset, protocol,
``embedding_size`` (SASRec's ``hidden_size``) and ``MAX_ITEM_LIST_LENGTH``;
every other hyper-parameter is the model's default (SASRec: 2 layers,
2 heads, inner size 256; MTAW: 1 ITL). Validation is switched off
(``eval_step: 0``) so only training is timed; the trainer's
``epoch_seconds`` counts training alone.

    python benchmarks/mtaw_vs_sasrec_speed.py ml-100k --epochs=1
"""

import argparse
import statistics

from recbole_selfattn.quick_start import run

MODELS = ("SASRec", "MTAW")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default="ml-100k", help="dataset name (default: ml-100k)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs per model (default: 1)")
    parser.add_argument("--embedding_size", type=int, default=64, help="embedding size d (default: 64)")
    parser.add_argument("--max_len", type=int, default=50, help="MAX_ITEM_LIST_LENGTH (default: 50)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    shared = {
        "epochs": args.epochs,
        "eval_step": 0,
        "embedding_size": args.embedding_size,
        "hidden_size": args.embedding_size,
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "show_progress": False,
        "state": "WARNING",
    }
    rows = []
    for model in MODELS:
        result = run(model, args.dataset, config_dict=dict(shared), saved=False, cmd_args=[])
        seconds = result["epoch_seconds"]
        rows.append((model, statistics.mean(seconds), min(seconds), result["num_params"]))

    print(f"\n{args.dataset}: embedding_size={args.embedding_size}, MAX_ITEM_LIST_LENGTH={args.max_len}, "
          f"epochs={args.epochs}")
    print(f"{'model':<8} {'s/epoch (mean)':>15} {'s/epoch (min)':>14} {'params':>10}")
    for model, mean, fastest, params in rows:
        print(f"{model:<8} {mean:>15.2f} {fastest:>14.2f} {params:>10,}")
    print(f"MTAW / SASRec (mean s/epoch): {rows[1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
