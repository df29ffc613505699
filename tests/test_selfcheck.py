"""`autograder check`: public checks only, in French, never revealing hidden checks."""

import subprocess
import sys

import nbformat

from autograder.selfcheck import HIDDEN_NOTICE
from tests.conftest import CONFIG, ROOT
from tests.corpus.build_corpus import Q1


def test_self_check_reports_public_checks_and_hides_the_rest(tmp_path):
    nb = nbformat.read(CONFIG.student, as_version=4)
    next(c for c in nb.cells if c.metadata.get("autograder", {}).get("question") == "q1").source = Q1
    path = tmp_path / "mon devoir.ipynb"
    nbformat.write(nb, path)
    proc = subprocess.run([sys.executable, "-m", "autograder", "check", str(path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "Vérification de « mon devoir.ipynb » : tests publics uniquement" in out
    assert "Question q1 — Premier réseau : entraîner, prédire, évaluer : 3/3 vérification(s) réussie(s)" in out
    assert "✔ q1.1" in out and "✘ q2.1" in out and "« < Compléter > » est encore présent" in out
    assert out.rstrip().endswith(HIDDEN_NOTICE)
    hidden = [c for c in CONFIG.checks if c.visibility != "visible"]
    for c in hidden:
        assert c.number not in out and c.description not in out
    for word in ("seuil", "threshold", "Précision mesurée", "0.95", "0.89"):
        assert word not in out
    assert "tous les tests" not in out.lower()
