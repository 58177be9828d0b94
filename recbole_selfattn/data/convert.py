"""Build RecBole atomic files from the raw benchmark datasets.

::

    python -m recbole_selfattn.data.convert ml-1m --raw DIR --out dataset/
    python -m recbole_selfattn.data.convert session --name tmall --raw DIR --out dataset/

``ml-1m`` writes ``<out>/ml-1m/ml-1m.inter`` from GroupLens' ``ratings.dat``
(``UserID::MovieID::Rating::Timestamp``; ``ratings.dat.xz`` is read directly),
or from a RecBole ``ml-1m.inter`` / ``ml-1m.inter.xz`` if that is what ``DIR``
holds. Every row is checked: four integer fields, nothing else.

``session`` writes the benchmark files ``<out>/<name>/<name>.{train,valid,test}.inter``
of a session dataset (Tmall, RetailRocket, Diginetica) from its pickles; see
:mod:`recbole_selfattn.data.session` for the protocol.

Bad input raises :class:`~recbole_selfattn.errors.DatasetError`; :func:`main`
prints it as ``error: ...`` and returns 2. Outputs are written to a temporary
file and renamed, so a failed conversion never leaves a half-written file.
"""

import itertools
import lzma
import time
from pathlib import Path

from recbole_selfattn.data.session import MAX_ITEM_IDS, SESSION_DATASETS, convert_session, write_atomic_file
from recbole_selfattn.cli.args import parse_args as parse_command_line
from recbole_selfattn.cli.main import command, exit_with
from recbole_selfattn.errors import DatasetError, UsageError

ML1M_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ML1M_FIELDS = ("UserID", "MovieID", "Rating", "Timestamp")
# (file name, field separator, has a header) in order of preference.
ML1M_SOURCES = (
    ("ratings.dat", "::", False),
    ("ratings.dat.xz", "::", False),
    ("ml-1m.inter", "\t", True),
    ("ml-1m.inter.xz", "\t", True),
)


def _visible(text):
    return text.rstrip("\n").replace("\t", "<TAB>")


def _open_text(path):
    opener = lzma.open if path.suffix == ".xz" else open
    return opener(path, "rt", encoding="utf-8", newline="")


def _ml1m_rows(path, separator, has_header):
    """Yield the atomic-file lines of one ml-1m source, checking each row."""
    shape = _visible(separator.join(ML1M_FIELDS))
    with _open_text(path) as f:
        if has_header:
            header = f.readline().rstrip("\r\n")
            if header + "\n" != ML1M_HEADER:
                raise DatasetError(
                    f"{path}, line 1: the header is '{_visible(header)}', expected '{_visible(ML1M_HEADER)}'. "
                    "Use RecBole's ml-1m.inter or GroupLens' ratings.dat."
                )
        for line_no, line in enumerate(f, start=2 if has_header else 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            values = line.split(separator)
            if len(values) != 4 or not all(v.isascii() and v.isdigit() for v in values):
                raise DatasetError(
                    f"{path}, line {line_no}: '{line[:80]}' is not a rating row. Each line must be "
                    f"{shape} with four non-negative integers separated by "
                    f"'{_visible(separator)}'. Fix or remove that line, or re-copy the "
                    "file from GroupLens (https://grouplens.org/datasets/movielens/1m/)."
                )
            yield "\t".join(values) + "\n"


def convert_ml1m(raw, out):
    """Write ``out/ml-1m/ml-1m.inter`` from the ml-1m files in folder ``raw``.

    Returns:
        dict: ``source`` (the file read), ``rows`` (ratings written), ``file``.
    """
    raw = Path(raw)
    if not raw.is_dir():
        raise DatasetError(
            f"MovieLens-1M folder {raw} does not exist; pass --raw DIR holding ratings.dat "
            "(or ratings.dat.xz, ml-1m.inter, ml-1m.inter.xz)."
        )
    for name, separator, has_header in ML1M_SOURCES:
        source = raw / name
        if source.is_file():
            break
    else:
        raise DatasetError(
            f"{raw} holds none of {', '.join(name for name, _, _ in ML1M_SOURCES)}: point --raw at the "
            "unpacked GroupLens ml-1m folder (https://grouplens.org/datasets/movielens/1m/)."
        )
    folder = Path(out) / "ml-1m"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "ml-1m.inter"
    try:
        lines = _ml1m_rows(source, separator, has_header)
        first = next(lines, None)
        if first is None:
            raise DatasetError(f"{source} has no rating rows. Re-copy the file.")
        rows = write_atomic_file(target, ML1M_HEADER, itertools.chain([first], lines))
    except (OSError, EOFError, lzma.LZMAError, UnicodeDecodeError) as e:
        raise DatasetError(f"Cannot read {source}: {e}. Re-copy the file.") from e
    return {"source": source, "rows": rows, "file": target}


USAGE = f"""\
usage: python -m recbole_selfattn.data.convert ml-1m --raw=DIR [--out=DIR]
       python -m recbole_selfattn.data.convert session --name=NAME --raw=DIR [--out=DIR] [options]

Build RecBole atomic files from the raw benchmark datasets (see dataset/README.md).
Options take the form --key=value or --key value.

ml-1m: MovieLens-1M from ratings.dat(.xz) or ml-1m.inter(.xz)
  --raw=DIR             folder holding ratings.dat, ratings.dat.xz or ml-1m.inter(.xz)
  --out=DIR             RecBole data_path; writes OUT/ml-1m/ml-1m.inter (default dataset)

session: a session dataset from all_train_seq.txt and test.txt pickles
  --name=NAME           dataset name ({', '.join(SESSION_DATASETS)} or your own)
  --raw=DIR             folder holding all_train_seq.txt and test.txt
  --out=DIR             RecBole data_path; writes OUT/NAME/NAME.{{train,valid,test}}.inter (default dataset)
  --valid_ratio=R       share of the training sessions (the last ones) held out for validation,
                        in (0, 1) (default 0.1)
  --max_len=N           keep the N most recent items of each prefix, <= MAX_ITEM_LIST_LENGTH (default 50)
  --min_prefix=N        shortest training prefix (default: the dataset's rule, 1 or 2)
  --max_item_ids=N      refuse pickles holding more item ids in all (default {MAX_ITEM_IDS});
                        each can become one output row
"""

_OPTIONS = {
    "ml-1m": {"raw": None, "out": "dataset"},
    "session": {"name": None, "raw": None, "out": "dataset", "valid_ratio": "0.1", "max_len": "50",
                "min_prefix": None, "max_item_ids": str(MAX_ITEM_IDS)},
}
_NUMBERS = {"valid_ratio": float, "max_len": int, "min_prefix": int, "max_item_ids": int}


def parse_args(argv):
    """``(kind, options)`` from ``ml-1m|session --key=value ...``; numbers converted."""
    kind = argv[0] if argv else None
    if kind not in _OPTIONS:
        raise UsageError(f"Name what to convert first: ml-1m or session (got {kind!r}). Run with --help for usage.")
    options, _ = parse_command_line(argv[1:], _OPTIONS[kind], recbole=False)
    for name in ("name", "raw") if kind == "session" else ("raw",):
        if options[name] is None:
            raise UsageError(f"{kind} needs --{name}=... (run with --help for usage).")
    for name, number in _NUMBERS.items():
        if options.get(name) is not None:
            try:
                options[name] = number(options[name])
            except ValueError:
                raise UsageError(f"--{name}={options[name]} is not {'a number' if number is float else 'an integer'}.") from None
    return kind, options


def _convert(argv):
    kind, args = parse_args(argv)
    start = time.perf_counter()
    if kind == "ml-1m":
        result = convert_ml1m(args["raw"], args["out"])
        print(f"Wrote {result['file']}: {result['rows']:,} ratings from {result['source']}.")
    else:
        result = convert_session(
            args["name"], args["raw"], args["out"], args["valid_ratio"], args["max_len"], args["min_prefix"],
            args["max_item_ids"],
        )
        check = result["published_train_pairs"]
        print(
            f"{args['name']}: {result['sessions']:,} training sessions -> {result['train_pairs']:,} training "
            f"pairs" + (f" (published: {check:,})" if check else "") + f"; wrote train {result['train']:,}, "
            f"valid {result['valid']:,}, test {result['test']:,} rows ({result['truncated']:,} prefixes "
            f"cut to {args['max_len']} items) to {result['files'][0].parent}."
        )
    print(f"Done in {time.perf_counter() - start:.1f} s.")
    return 0


def main(argv=None):
    """Entry point; returns the exit status (2 on bad input)."""
    return command(_convert, USAGE, argv)


if __name__ == "__main__":
    exit_with(main)
