"""Students' checks before handing in: `autograder check` and the standalone `verifier.py`.

Public checks only, in French, never revealing hidden checks; both give the same report.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from autograder.core.mnist_data import ensure_mnist
from autograder.core.messages import HIDDEN_NOTICE
from autograder.student.bundle import SCRIPT_NAME
from tests.conftest import CONFIG, CORPUS, ROOT, secret_solution_lines
from tests.corpus.build_corpus import CASES, Q1, build

SCRIPT = CONFIG.student.parent / SCRIPT_NAME
HIDDEN = [c for c in CONFIG.checks if c.visibility != "visible"]


def standalone(where):
    """verifier.py alone in a folder where importing the grader's package fails."""
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(SCRIPT, where / SCRIPT_NAME)
    (where / "autograder.py").write_text("raise ImportError('verifier.py must not need the grader')\n")
    return dict(os.environ, AUTOGRADER_CACHE=str(ensure_mnist(log=lambda m: None).parent))


def fake_colab(where):
    """Colab's own API is unreachable here: a stand-in answers get_ipynb with the template's JSON."""
    colab = where / "google" / "colab"
    colab.mkdir(parents=True)
    (where / "google" / "__init__.py").write_text("")
    (colab / "__init__.py").write_text("")
    (colab / "_message.py").write_text(
        "import json\n"
        "def blocking_request(kind, request='', timeout_sec=None):\n"
        "    assert kind == 'get_ipynb'\n"
        f"    return {{'ipynb': json.load(open({str(CONFIG.student)!r}, encoding='utf-8'))}}\n")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Every self-check of this module, run two at a time (each kernel uses one thread)."""
    tmp = tmp_path_factory.mktemp("selfcheck")
    q1 = nbformat.read(CONFIG.student, as_version=4)
    next(c for c in q1.cells if c.metadata.get("autograder", {}).get("question") == "q1").source = Q1
    nbformat.write(q1, tmp / "mon devoir.ipynb")
    # q1 right; q2 normalises without BatchNormalization; q3 uses batches of 64; q4 left as released.
    defects = build("defauts", {"q2": CASES["no_batchnorm"][0]["q2"], "q3": CASES["batch_64"][0]["q3"],
                                "q4": None}, {})
    nbformat.write(defects, tmp / "défauts.ipynb")
    check = [sys.executable, "-m", "autograder", "check"]
    script_env, colab_env = standalone(tmp / "script"), standalone(tmp / "colab")
    fake_colab(tmp / "colab")
    runs = {
        "q1": (check + [str(tmp / "mon devoir.ipynb")], ROOT, None),
        "solution": (check + [str(CORPUS / "solution.ipynb")], ROOT, None),
        "defects": (check + [str(tmp / "défauts.ipynb")], ROOT, None),
        "script": ([sys.executable, SCRIPT_NAME, str(tmp / "mon devoir.ipynb")], tmp / "script", script_env),
        "colab": ([sys.executable, "-c", "import verifier; verifier.verifier_colab()"], tmp / "colab",
                  dict(colab_env, PYTHONPATH=str(tmp / "colab"))),
    }

    def run(item):
        cmd, cwd, env = item
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(runs, pool.map(run, runs.values())))


def report(out: str) -> str:
    return out[out.index("Vérification de"):].rstrip()


def test_self_check_reports_public_checks_and_hides_the_rest(outputs):
    out = outputs["q1"]
    assert "Vérification de « mon devoir.ipynb » : tests publics uniquement" in out
    assert "Question q1 — Premier réseau : entraîner, prédire, évaluer : 3/3 vérification(s) réussie(s)" in out
    assert "✔ q1.1" in out and "✘ q2.1" in out and "« < Compléter > » est encore présent" in out
    assert out.rstrip().endswith(HIDDEN_NOTICE)
    for c in HIDDEN:
        assert c.number not in out and c.description not in out
    for word in ("seuil", "threshold", "Précision mesurée", "0.95", "0.89"):
        assert word not in out
    assert "tous les tests" not in out.lower()


def test_self_check_on_the_solution_passes_every_public_check_and_still_warns(outputs):
    out = outputs["solution"]
    for q in CONFIG.public().questions:
        assert f"Question {q.id} — {q.title} : {len(q.checks)}/{len(q.checks)} vérification(s) réussie(s)" in out
    assert "✘" not in out and "à corriger" not in out
    assert out.rstrip().endswith(HIDDEN_NOTICE)


def test_self_check_names_each_defect_and_what_to_fix(outputs):
    out = outputs["defects"]
    assert "Question q1 — Premier réseau : entraîner, prédire, évaluer : 3/3" in out
    assert "✘ q2.1 La première couche est BatchNormalization sur 784 entrées." in out
    assert "première couche trouvée : Rescaling" in out and "✔ q2.2" in out
    assert "✘ q3.1" in out and "L'entraînement doit utiliser des batchs de taille 128" in out and "taille utilisée : 64" in out
    assert "Question q4 — Réseau plus profond : 0/3" in out and "« < Compléter > » est encore présent" in out
    for c in HIDDEN:
        assert c.number not in out


def test_standalone_script_gives_the_same_report_without_the_grader(outputs):
    assert report(outputs["script"]) == report(outputs["q1"])


def test_standalone_script_checks_the_open_colab_notebook(outputs):
    out = report(outputs["colab"])
    assert "Question q1 — Premier réseau : entraîner, prédire, évaluer : 0/3 vérification(s) réussie(s)" in out
    assert "« < Compléter > » est encore présent" in out and out.endswith(HIDDEN_NOTICE)


def test_standalone_script_carries_no_hidden_material():
    text = SCRIPT.read_text(encoding="utf-8")
    assert "min_accuracy" not in text and "seuil attendu" not in text
    settings = json.loads(ast.literal_eval(text.split("SETTINGS = json.loads(", 1)[1].split(")\nSOURCES", 1)[0]))
    numbers = [c["number"] for q in settings["questions"] for c in q["checks"]]
    assert numbers == [c.number for c in CONFIG.public().checks]
    for c in HIDDEN:
        assert c.description not in text
    assert "points" not in json.dumps(settings["questions"])
    assert not [line for line in secret_solution_lines() if line in text]
    for c in CONFIG.public().checks:
        assert f"def {c.function}(" in text
