"""Helpers of the benchmark tests: the command called in-process, its output
and files read back, a tiny benchmark protocol, and the scripts of
``benchmarks/`` loaded as modules."""

import importlib.util
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import yaml

from recbole_selfattn import benchmark
from tests.conftest import cyclic_sequences, tiny_config, write_inter


def load_script(name):
    """``benchmarks/<name>.py`` as a module (the folder is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(argv):
    """``benchmark.main(argv)`` in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = benchmark.main(argv)
    return code, out.getvalue(), err.getvalue()


def progress(out):
    """The progress lines (``[i/n] model seed=s ... outcome``) of the command's output."""
    return [line for line in out.splitlines() if line.startswith("[")]


def load_json(path):
    return json.loads(path.read_text())


def markdown_table(markdown):
    """The Markdown table of results.md as a list of rows of cells (header first)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert set(lines[1].replace("|", "")) == {"-"}  # the separator row
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in [lines[0], *lines[2:]]]


def tiny_protocol(root, **overrides):
    """``root/data/tiny`` and ``root/tiny.yaml`` naming it by a relative path
    (the benchmark is run from ``root``); returns the YAML's name."""
    write_inter(root / "data", "tiny", cyclic_sequences())
    (root / "tiny.yaml").write_text(yaml.safe_dump(tiny_config("data", **overrides)))
    return "tiny.yaml"


def machine_paths_in(folder, *paths):
    """``(file, path)`` for every file under ``folder`` whose text names one of
    ``paths`` (or this Python installation): what a results folder must not hold."""
    import sys

    paths = [str(p) for p in paths] + [sys.prefix]
    found = []
    for file in sorted(folder.rglob("*")):
        # checkpoints too: torch.save stores the config's strings uncompressed
        if file.is_file() and file.suffix in (".json", ".yaml", ".md", ".csv", ".log", ".lock", ".pth"):
            text = file.read_text(errors="replace")
            found += [(str(file.relative_to(folder)), p) for p in paths if p in text]
    return found
