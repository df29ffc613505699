"""Mapping cells to questions, with and without the metadata editors may drop."""

import copy

import nbformat
import pytest

from autograder.core.config import load_config
from autograder.notebook.plan import build_plan
from autograder.notebook.mapping import map_cells, template_cells

CONFIG = load_config()
TEMPLATE = nbformat.read(CONFIG.student, as_version=4)
MASTERS = template_cells(TEMPLATE)


def student():
    return copy.deepcopy(TEMPLATE)


def index_of(nb, question):
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("autograder", {}).get("question") == question)


def questions(cell_map):
    return [(c.question, c.source.splitlines()[0] if c.source else "") for c in cell_map.cells if c.role == "question"]


def strip(nb):
    for cell in nb.cells:
        cell.metadata = nbformat.NotebookNode()
    return nb


@pytest.mark.parametrize("prepare", [lambda nb: nb, strip], ids=["metadata", "stripped"])
def test_each_question_cell_is_found(prepare):
    cell_map = map_cells(prepare(student()), MASTERS)
    assert [q for q, _ in questions(cell_map)] == ["q1", "q2", "q3", "q4"]
    assert cell_map.missing_questions == []
    assert sum(c.role == "instructor" for c in cell_map.cells) == sum(m.instructor for m in MASTERS)


@pytest.mark.parametrize("prepare", [lambda nb: nb, strip], ids=["metadata", "stripped"])
def test_added_and_split_cells_belong_to_the_question_they_follow(prepare):
    nb = student()
    i = index_of(nb, "q1")
    nb.cells.insert(i + 1, nbformat.v4.new_code_cell("print('ajout après q1')"))
    j = index_of(nb, "q4")
    nb.cells.insert(j + 1, nbformat.v4.new_code_cell("reste de q4"))
    nb.cells.insert(j + 2, nbformat.v4.new_markdown_cell("mes notes"))
    nb.cells.insert(j + 3, nbformat.v4.new_code_cell("encore q4"))
    cell_map = map_cells(prepare(nb), MASTERS)
    assert [c.question for c in cell_map.cells if c.source in ("print('ajout après q1')", "reste de q4", "encore q4")] \
        == ["q1", "q4", "q4"]


def test_edited_instructor_cells_are_restored_and_deleted_ones_put_back():
    nb = student()
    reshape = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "reshape")
    reshape.source += "\nX_train = X_train[:10]"
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "one-hot"]
    cell_map = map_cells(nb, MASTERS)
    by_id = {c.master_id: c for c in cell_map.cells if c.role == "instructor"}
    assert by_id["reshape"].restored and "X_train[:10]" not in by_id["reshape"].source
    assert by_id["one-hot"].student_index is None and "OneHotEncoder" in by_id["one-hot"].source
    ids = [c.master_id for c in cell_map.cells if c.role == "instructor" and c.cell_type == "code"]
    assert ids == [m.grade_id for m in MASTERS if m.instructor and m.cell_type == "code"]


def test_missing_question_is_reported():
    nb = student()
    del nb.cells[index_of(nb, "q3")]
    assert map_cells(nb, MASTERS).missing_questions == ["q3"]


def test_plan_captures_after_each_questions_last_cell_and_skips_otter_ignore():
    nb = student()
    i = index_of(nb, "q2")
    nb.cells.insert(i + 1, nbformat.v4.new_code_cell("q2 suite"))
    steps = build_plan(map_cells(nb, MASTERS), "PREAMBLE")
    kinds = [(s.kind, s.question) for s in steps if s.kind != "cell" or s.question]
    assert kinds[0] == ("preamble", None)
    q2 = [k for k in kinds if k[1] == "q2"]
    assert q2 == [("begin", "q2"), ("cell", "q2"), ("begin", "q2"), ("cell", "q2"), ("capture", "q2")]
    sources = [s.source for s in steps]
    assert not any("LogisticRegression(" in s for s in sources)


@pytest.mark.parametrize("prepare", [lambda nb: nb, strip], ids=["metadata", "stripped"])
def test_the_exercise_cell_is_told_from_cells_the_student_added(prepare):
    nb = student()
    q3 = index_of(nb, "q3")
    nb.cells[q3].source = nb.cells[q3].source.replace("< Compléter >", "model.fit(X_train, y_train, batch_size=128, epochs=5)")
    nb.cells.insert(q3 + 1, nbformat.v4.new_code_cell("essai = keras.Sequential()\nessai.fit(X_train[:100], y_train[:100])"))
    nb.cells.insert(q3, nbformat.v4.new_code_cell("print('avant q3')"))      # placed in q2, as it follows q2
    cell_map = map_cells(prepare(nb), MASTERS)
    exercise = {c.question: c.source for c in cell_map.cells if c.exercise}
    assert sorted(exercise) == ["q1", "q2", "q3", "q4"]
    assert exercise["q3"].startswith("# Entrainer le réseau avec 5 époques")
    added = {c.source.splitlines()[0]: (c.question, c.exercise) for c in cell_map.cells if c.student_index in (q3, q3 + 2)}
    assert added["essai = keras.Sequential()"] == ("q3", False)
    assert added["print('avant q3')"][1] is False     # q2 with metadata, q3 without: never the exercise
    assert "accuracy = model.evaluate(X_test, y_test)[1]" in cell_map.given["q3"]
    assert not any(line.startswith("#") for line in cell_map.given["q3"])


def test_plan_tells_the_recorder_which_cells_are_the_exercise_and_which_lines_are_given():
    nb = student()
    q4 = index_of(nb, "q4")
    nb.cells.insert(q4 + 1, nbformat.v4.new_code_cell("print('ajout')"))
    steps = [s for s in build_plan(map_cells(nb, MASTERS), "PREAMBLE") if s.question == "q4"]
    assert [s.kind for s in steps] == ["begin", "cell", "begin", "cell", "capture"]
    assert "begin('q4', True, [" in steps[0].source and "accuracy = model.evaluate(X_test, y_test)[1]" in steps[0].source
    assert steps[2].source.endswith("begin('q4', False, [])")
