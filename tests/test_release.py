"""Release: the student notebook generated from the master."""

import json

import nbformat
import pytest

from autograder.cli.main import main
from autograder.core.config import load_config
from autograder.student.bundle import SCRIPT_NAME, render_script
from autograder.interop.release import make_student_notebook, render
from tests.conftest import secret_solution_lines

CONFIG = load_config()


@pytest.fixture(scope="module")
def master():
    return nbformat.read(CONFIG.master, as_version=4)


@pytest.fixture(scope="module")
def student(master):
    return make_student_notebook(master, CONFIG.placeholder)


def test_committed_template_has_not_drifted(student):
    assert CONFIG.student.read_text(encoding="utf-8") == render(student), (
        "student_template/ is stale: run `make release` and commit the result")
    assert (CONFIG.student.parent / SCRIPT_NAME).read_text(encoding="utf-8") == render_script(CONFIG), (
        f"student_template/{SCRIPT_NAME} is stale: run `make release` and commit the result")


def test_release_is_deterministic(master, tmp_path):
    assert main(["release", "--out", str(tmp_path / "a")]) == 0
    assert main(["release", "--out", str(tmp_path / "b")]) == 0
    a = (tmp_path / "a" / CONFIG.student.name).read_bytes()
    assert a == (tmp_path / "b" / CONFIG.student.name).read_bytes()
    assert (tmp_path / "a" / SCRIPT_NAME).read_bytes() == (tmp_path / "b" / SCRIPT_NAME).read_bytes()
    assert a.decode() == render(make_student_notebook(master, CONFIG.placeholder))


def test_exactly_the_four_exercise_cells_hold_the_placeholder(student):
    holders = [c for c in student.cells if CONFIG.placeholder in c.source]
    assert [c.metadata["autograder"]["question"] for c in holders] == ["q1", "q2", "q3", "q4"]
    assert all(c.metadata["nbgrader"]["grade_id"] == c.metadata["autograder"]["question"] for c in holders)
    assert all(c.cell_type == "code" for c in holders)


def test_no_solution_leaks(master, student):
    text = nbformat.writes(student)
    for line in secret_solution_lines():
        assert line not in text, f"solution line leaked: {line}"
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    for cell in student.cells:
        assert not cell.get("outputs") and not cell.get("execution_count")
        assert set(cell.metadata) <= {"nbgrader", "autograder", "otter", "tags", "editable", "deletable"}
    assert set(student.metadata) <= {"kernelspec", "language_info"}


def test_instructor_cells_are_locked_and_logistic_cells_skipped(student):
    for cell in student.cells:
        nbg = cell.metadata["nbgrader"]
        if "autograder" in cell.metadata:
            assert nbg["solution"] and not nbg["locked"]
        else:
            assert nbg["locked"] and cell.metadata.get("editable") is False
    skipped = [c.metadata["nbgrader"]["grade_id"] for c in student.cells if "otter_ignore" in c.metadata.get("tags", [])]
    assert skipped == ["regression-logistique", "visualisation-poids"]


def test_master_is_faithful_to_the_seed_sections(master):
    text = "\n".join(c.source for c in master.cells)
    for heading in ["# Implémenter des réseaux de neurones avec Keras", "## Normalisation",
                    "### Les batchs", "### Les époques", "## Limites de notre modèle",
                    "$$y_1 = a(\\sum(w_ix_i) + b)$$",
                    "https://upload.wikimedia.org/wikipedia/commons/2/27/MnistExamples.png"]:
        assert heading in text
    json.dumps(master)  # serialisable
