"""The otter-grader export: built by otter's own generate, graded by `otter run`, same scores as ours."""

import copy
import json
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from otter.test_files import create_test_file

from autograder import otter_plugin
from autograder.mapping import map_cells, master_cells
from autograder.mnist_data import from_cache
from autograder.otter_plugin import PLUGIN_NAME, unrunnable_questions
from tests.conftest import CONFIG, CORPUS, ROOT, secret_solution_lines

OTTER = Path(sys.executable).parent / "otter"
# One rubric defect each in otherwise correct code (see expected.json), plus the two ends.
AGREEMENT = ["solution", "template", "batch_64", "epochs_3", "no_batchnorm", "no_hidden_layer",
             "sigmoid_output", "trained_on_test", "undertrained"]
TEMPLATE = nbformat.read(CONFIG.student, as_version=4)


@pytest.fixture(scope="module")
def otter_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "autograder", "export", "otter", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "otter grade -a" in proc.stderr
    return out / "autograder.zip"


@pytest.fixture(scope="module")
def unpacked(otter_zip, tmp_path_factory):
    where = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(otter_zip) as archive:
        archive.extractall(where)
    return where


def test_zip_is_otters_layout_with_package_requirements_and_mnist(unpacked):
    for name in ("run_autograder", "run_otter.py", "setup.sh", "environment.yml", "otter_config.json"):
        assert (unpacked / name).is_file(), name
    assert sorted(p.name for p in (unpacked / "tests").iterdir()) == [f"{q}.py" for q in CONFIG.question_ids]
    wheel = next((unpacked / "files").glob("keras_mnist_autograder-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        assert {"autograder/checks.py", "autograder/otter_plugin.py", "autograder/kernel_runtime.py"} <= set(
            archive.namelist())
    from_cache(unpacked / "files")  # raises unless all four arrays match their SHA-256
    env = (unpacked / "environment.yml").read_text()
    assert "python=3.11" in env and "keras==" in env and f"/autograder/source/files/{wheel.name}" in env


def test_test_files_call_the_rubric_functions_with_grading_toml_points_and_params(unpacked, monkeypatch):
    calls = []
    monkeypatch.setattr(otter_plugin, "check", lambda *args: calls.append(args))
    for question in CONFIG.questions:
        test_file = create_test_file(str(unpacked / "tests" / f"{question.id}.py"), None)
        assert test_file.name == question.id
        assert [(tc.name, tc.points, tc.hidden) for tc in test_file.test_cases] == [
            (c.number, c.points, c.visibility == "hidden") for c in question.checks]
        for tc in test_file.test_cases:
            tc.body.call_func({})
    assert calls == [(c.question, c.function, c.params) for c in CONFIG.checks]


def test_otter_config_names_the_plugin_and_carries_no_solution(unpacked):
    config = json.loads((unpacked / "otter_config.json").read_text())
    [plugin] = config["plugins"]
    settings = plugin[PLUGIN_NAME]
    assert nbformat.from_dict(settings["template"]) == TEMPLATE
    assert (settings["seed"], settings["threads"]) == (CONFIG.limits.seed, CONFIG.limits.threads)
    text = "".join(p.read_text(errors="replace") for p in unpacked.rglob("*") if p.is_file() and p.suffix != ".npz")
    assert not [line for line in secret_solution_lines() if line in text]


def test_student_notebook_tells_otter_where_each_question_ends():
    tagged = [(c.metadata["autograder"]["question"], c.metadata["otter"]["tests"])
              for c in TEMPLATE.cells if "otter" in c.metadata]
    assert tagged == [(q, [q]) for q in CONFIG.question_ids]


def test_unrunnable_questions_get_the_graders_reasons():
    nb = copy.deepcopy(TEMPLATE)
    cells = {c.metadata["autograder"]["question"]: c for c in nb.cells if "autograder" in c.metadata}
    cells["q1"].source = "!pip list\nmodel = None"                       # IPython syntax runs
    cells["q2"].source = "model = keras.Sequential(["                     # a real syntax error
    nb.cells.remove(cells["q3"])
    failed = unrunnable_questions(map_cells(nb, master_cells(TEMPLATE)), CONFIG.question_ids, CONFIG.placeholder)
    assert "q1" not in failed
    assert "erreur de syntaxe" in failed["q2"]
    assert "aucune cellule" in failed["q3"]
    assert "« < Compléter > » est encore présent" in failed["q4"]


def _question_scores(tests: list[dict], key: str) -> dict[str, float]:
    scores: dict[str, float] = {}
    for t in tests:
        q = t[key].split(".")[0]
        if q in CONFIG.question_ids:
            scores[q] = scores.get(q, 0.0) + float(t.get("score") or 0)
    return scores


@pytest.fixture(scope="module")
def otter_results(otter_zip, tmp_path_factory):
    def run(name):
        where = tmp_path_factory.mktemp(f"otter-{name}")
        proc = subprocess.run([str(OTTER), "run", "--no-logo", "-a", str(otter_zip), "-o", str(where),
                               str(CORPUS / f"{name}.ipynb")], capture_output=True, text=True, cwd=where)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return json.loads((where / "results.json").read_text())

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(AGREEMENT, pool.map(run, AGREEMENT)))


@pytest.mark.slow
@pytest.mark.parametrize("name", AGREEMENT)
def test_otter_run_gives_the_same_question_scores_as_autograder_grade(name, otter_results, graded):
    ours = _question_scores(graded.results(name)["tests"], "number")
    theirs = _question_scores(otter_results[name]["tests"], "name")
    assert theirs == ours
    assert set(ours) == set(CONFIG.question_ids)
