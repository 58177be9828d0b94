"""docs/adding-a-model.md works as written: its two files, added to a copy of
the package, give a model that ``run.py`` lists, trains and tests."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_args

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "docs" / "adding-a-model.md"


def recipe_files():
    """``{path: text}`` of each code block the recipe introduces with its file name."""
    blocks = re.findall(r"^`(recbole_selfattn/[\w/.]+)`:\n\n```\w+\n(.*?)```", RECIPE.read_text(), re.S | re.M)
    return dict(blocks)


def test_the_recipe_adds_a_model_that_trains(tiny_data, tmp_path):
    files = recipe_files()
    assert sorted(files) == ["recbole_selfattn/model/meanpool.py", "recbole_selfattn/properties/model/MeanPool.yaml"]
    copy = tmp_path / "checkout"
    shutil.copytree(REPO / "recbole_selfattn", copy / "recbole_selfattn",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "run.py", copy)
    for path, text in files.items():
        (copy / path).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(copy)}

    def run(*args):
        return subprocess.run([sys.executable, str(copy / "run.py"), *args], capture_output=True, text=True,
                              cwd=tmp_path, env=env)

    help_text = run("--help").stdout
    assert "plugin models:           AttRec, MeanPool, MIND, MTAW" in help_text
    proc = run("--model=MeanPool", "--dataset=tiny", *cli_args(tiny_data))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MeanPool on tiny" in proc.stdout and "test result" in proc.stdout and "\nrecall@5 " in proc.stdout
    assert "embedding_size = 32" not in proc.stderr  # state=WARNING: no config dump
    # The model came from the copy, with its YAML's loss and the command line's size.
    check = ("from recbole_selfattn import Config, get_model; m = get_model('MeanPool'); "
             "c = Config('MeanPool', 'ml-100k', cmd_args=[]); print(m.__module__, c['loss_type'], c['embedding_size'])")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.stdout.split() == ["recbole_selfattn.model.meanpool", "CE", "32"], out.stderr[-2000:]
