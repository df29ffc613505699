"""`make smoke`: a short end-to-end check of an install on the interpreter its venv was built with.

Not collected by `make test` (its name has no test_ prefix): the full suite grades the same notebooks among
the corpus.  CI runs it in a second venv built with Debian's own python3.11 (.ci/run).
"""

import json
import shutil
import subprocess
import sys

import pytest

from autograder.cli.main import main
from autograder.student.bundle import SCRIPT_NAME
from tests.conftest import CONFIG, CORPUS

NOTEBOOKS = ("solution", "template")


def test_release_writes_the_committed_student_files(tmp_path):
    assert main(["release", "--out", str(tmp_path)]) == 0
    for name in (CONFIG.student.name, SCRIPT_NAME):
        assert (tmp_path / name).read_bytes() == (CONFIG.student.parent / name).read_bytes(), name


def test_the_solution_and_the_template_get_their_expected_scores(tmp_path, expected):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(CORPUS / f"{name}.ipynb", inbox)
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(inbox), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in NOTEBOOKS:
        results = json.loads((out / name / "results.json").read_text())
        failing = {t["number"] for t in results["tests"] if t["status"] == "failed"}
        assert results["status"] == "ok" and failing == set(expected[name]["failing"]), name
        assert results["score"] == pytest.approx(sum(c.points for c in CONFIG.checks if c.number not in failing))
