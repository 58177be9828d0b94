"""Lightweight commands import no model code: ``--help`` of every command and
a whole conversion run without RecBole's model modules or the plugin's."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

COMMANDS = [
    ("path", "run.py", ["--help"]),
    ("path", "run.py", ["--benchmark", "--help"]),
    ("path", "run_hyper.py", ["--help"]),
    ("module", "recbole_selfattn.hyper", ["--help"]),
    ("module", "recbole_selfattn.benchmark", ["--help"]),
    ("module", "recbole_selfattn.data.convert", ["--help"]),
    ("module", "recbole_selfattn.diagnostics.mind", ["--help"]),
]

# Runs each command in turn in one process and reports, after each, the exit
# status and the model modules imported so far.
SCRIPT = """
import json, runpy, sys
report = []
for kind, target, args in json.loads(sys.argv[1]):
    sys.argv = [target, *args]
    try:
        (runpy.run_path if kind == "path" else runpy.run_module)(target, run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code
    models = sorted(m for m in sys.modules if m.startswith(("recbole.model.", "recbole_selfattn.model")))
    report.append([target, args, code, models])
print(json.dumps(report))
"""


def _imports(commands, cwd):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(commands)], capture_output=True, text=True,
                          cwd=cwd, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_help_of_every_command_imports_no_model():
    commands = [[kind, str(REPO / target) if kind == "path" else target, args] for kind, target, args in COMMANDS]
    for target, args, code, models in _imports(commands, REPO):
        assert code == 0 and models == [], (target, args, models)


def test_a_conversion_imports_no_model(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "ratings.dat").write_text("1::10::5::978300760\n2::10::3::978300761\n")
    args = ["ml-1m", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out")]
    [(_, _, code, models)] = _imports([["module", "recbole_selfattn.data.convert", args]], tmp_path)
    assert code == 0 and models == []
    assert (tmp_path / "out" / "ml-1m" / "ml-1m.inter").is_file()


def test_the_check_sees_model_imports():
    """The same check on a command that builds a model does report it."""
    code = "import sys; from recbole_selfattn import get_model; get_model('SASRec'); get_model('AttRec')"
    proc = subprocess.run([sys.executable, "-c", code + "; print(sorted(m for m in sys.modules if "
                           "m.startswith(('recbole.model.', 'recbole_selfattn.model'))))"],
                          capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert "recbole.model.sequential_recommender.sasrec" in proc.stdout
    assert "recbole_selfattn.model.attrec" in proc.stdout
