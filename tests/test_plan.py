"""The plan: hidden steps around the cells map_cells gives for the released template, and the preamble."""

import ast
import json
import copy
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.core.config import load_config
from autograder.notebook import plan
from autograder.notebook.mapping import CellMap, PlannedCell, given_lines, map_cells, template_cells
from autograder.notebook.plan import (RUNTIME_MODULE, STEPS_PER_EXECUTION, build_plan, preamble_source,
                                      runtime_sources, should_run)

CONFIG = load_config()
TEMPLATE = nbformat.read(CONFIG.student, as_version=4)
MASTERS = template_cells(TEMPLATE)
GIVEN = {m.question: list(given_lines(m.source)) for m in MASTERS if m.question}
# The template's instructor code cells that run, in order: regression-logistique and
# visualisation-poids are tagged otter_ignore.
INSTRUCTOR = ["installation", "chargement-mnist", "reshape", "naive-bayes", "one-hot", "regression-lineaire",
              "modele-keras"]
# A stub runtime package, a module and the package's own source importing it as the real one does.
STUB_RUNTIME = [("calls", "CALLS = []\n"),
                ("__init__", "from .calls import CALLS\ndef install(config):\n    CALLS.append(('install', config))\n"
                             "def begin(*args):\n    CALLS.append(('begin', args))\n"
                             "def capture(*args):\n    CALLS.append(('capture', args))\n")]


def stub_runtime(monkeypatch):
    """The preamble ships the stub runtime; the modules it makes are removed again after the test."""
    monkeypatch.setattr(plan, "runtime_sources", lambda: STUB_RUNTIME)
    for name in (RUNTIME_MODULE, RUNTIME_MODULE + ".calls"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def runtime(monkeypatch):
    """A stub runtime package: hidden steps run against it, each call recorded with its arguments."""
    stub_runtime(monkeypatch)
    exec(compile(preamble_source("/m", "/c", 0, 1), "<preamble>", "exec"), {})
    return sys.modules[RUNTIME_MODULE]


def student():
    return copy.deepcopy(TEMPLATE)


def index_of(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def describe(steps, runtime, cell_map):
    """Each step as (kind, question, what it does): a cell's grade_id or first line, a hidden step's recorded call."""
    out = []
    for s in steps[1:]:
        if s.kind == "cell":
            assert s.cell is cell_map.cells[s.position] and s.source == s.cell.source and not s.hidden
            out.append(("cell", s.question, s.cell.master_id or s.source.splitlines()[0]))
        else:
            assert s.hidden and s.cell is None and s.position is None
            del runtime.CALLS[:]
            exec(compile(s.source, "<hidden>", "exec"), {})
            [call] = runtime.CALLS
            out.append((s.kind, s.question, call))
    return out


def question(q, *cells):
    """Expected steps of a question: begin with the given lines, the cells, capture."""
    return [("begin", q, ("begin", (q, True, GIVEN[q]))), *cells, ("capture", q, ("capture", (q,)))]


def test_template_plan_instructor_cells_then_each_question_wrapped(runtime):
    """Preamble first; instructor cells (question None) minus otter_ignore and markdown; begin/cell/capture per question."""
    cell_map = map_cells(student(), MASTERS)
    steps = build_plan(cell_map, "PREAMBLE")
    assert (steps[0].kind, steps[0].source, steps[0].question, steps[0].hidden) == ("preamble", "PREAMBLE", None, True)
    assert describe(steps, runtime, cell_map) == [("cell", None, g) for g in INSTRUCTOR] + [
        step for q in ("q1", "q2", "q3", "q4") for step in question(q, ("cell", q, q))]


def test_added_cells_get_their_own_begin_and_capture_follows_the_last_runnable_cell(runtime):
    """begin(q, False, []) before added cells; empty cells skipped, even when last in a question."""
    nb = student()
    nb.cells.insert(index_of(nb, "q1") + 1, nbformat.v4.new_code_cell("print('ajout q1')"))
    nb.cells.insert(index_of(nb, "reshape") + 1, nbformat.v4.new_code_cell("   \n\t"))
    nb.cells.insert(index_of(nb, "q4") + 1, nbformat.v4.new_code_cell(""))
    cell_map = map_cells(nb, MASTERS)
    assert [c.question for c in cell_map.cells if not c.source.strip()] == [None, "q4"]
    assert describe(build_plan(cell_map, "P"), runtime, cell_map) == [("cell", None, g) for g in INSTRUCTOR] + [
        *question("q1", ("cell", "q1", "q1"))[:2],
        ("begin", "q1", ("begin", ("q1", False, []))), ("cell", "q1", "print('ajout q1')"),
        ("capture", "q1", ("capture", ("q1",))),
        *question("q2", ("cell", "q2", "q2")), *question("q3", ("cell", "q3", "q3")),
        *question("q4", ("cell", "q4", "q4"))]


def test_otter_ignore_and_empty_cells_are_skipped_and_capture_follows_the_last_cell_that_runs(runtime):
    """On a hand-made map: a question's skipped trailing cells do not delay its capture; free cells run unwrapped."""
    cells = [PlannedCell("code", "a = 1", "question", "q9", 0, exercise=True),
             PlannedCell("code", "slow()", "question", "q9", 1, tags=("otter_ignore",)),
             PlannedCell("code", "   ", "question", "q9", 2),
             PlannedCell("markdown", "# notes", "free", None, 3),
             PlannedCell("code", "print(a)", "free", None, 4)]
    cell_map = CellMap(cells, given={"q9": ("a = 1", "b = 2")})
    steps = build_plan(cell_map, "P")
    assert [s.position for s in steps if s.kind == "cell"] == [0, 4]
    assert describe(steps, runtime, cell_map) == [
        ("begin", "q9", ("begin", ("q9", True, ["a = 1", "b = 2"]))), ("cell", "q9", "a = 1"),
        ("capture", "q9", ("capture", ("q9",))), ("cell", None, "print(a)")]


def test_a_question_whose_exercise_cell_is_empty_sends_no_given_lines(runtime):
    """The emptied exercise cell is skipped: the added cell after it runs under begin(q, False, []); an empty
    question with no other cell gets no step at all."""
    nb = student()
    nb.cells[index_of(nb, "q3")].source = ""
    nb.cells.insert(index_of(nb, "q3") + 1, nbformat.v4.new_code_cell("model.fit(X_train, y_train)"))
    nb.cells[index_of(nb, "q4")].source = "  "
    cell_map = map_cells(nb, MASTERS)
    described = describe(build_plan(cell_map, "P"), runtime, cell_map)
    assert [d for d in described if d[1] in ("q3", "q4")] == [
        ("begin", "q3", ("begin", ("q3", False, []))), ("cell", "q3", "model.fit(X_train, y_train)"),
        ("capture", "q3", ("capture", ("q3",)))]


def test_a_duplicated_exercise_cell_runs_under_one_begin(runtime):
    """A copy-pasted question cell keeps its metadata: both are the exercise, one begin, capture after the second."""
    nb = student()
    nb.cells.insert(index_of(nb, "q2") + 1, copy.deepcopy(nb.cells[index_of(nb, "q2")]))
    cell_map = map_cells(nb, MASTERS)
    described = describe(build_plan(cell_map, "P"), runtime, cell_map)
    assert [d for d in described if d[1] == "q2"] == question("q2", ("cell", "q2", "q2"), ("cell", "q2", "q2"))


@pytest.mark.parametrize("cell, runs", [
    (PlannedCell("code", "x = 1", "free"), True),
    (PlannedCell("code", "x = 1", "free", tags=("slow",)), True),
    (PlannedCell("code", "x = 1", "instructor", tags=("slow", "otter_ignore")), False),
    (PlannedCell("code", " \n\t\n", "question", "q1"), False),
    (PlannedCell("markdown", "x = 1", "free"), False),
    (PlannedCell("raw", "x = 1", "free"), False),
])
def test_should_run_only_non_empty_code_without_otter_ignore(cell, runs):
    assert should_run(cell) is runs


def test_given_lines_are_the_stripped_non_comment_lines():
    source = "# Compiler\n  model.compile()  \n\n< Compléter >\n    # indenté\nacc = f(x)  # fin\n"
    assert given_lines(source) == ("model.compile()", "< Compléter >", "acc = f(x)  # fin")
    assert GIVEN["q3"] == ["< Compléter >", "accuracy = model.evaluate(X_test, y_test)[1]",
                           'print("Précision : %.3f" % accuracy)']


CONFIG_ARGS = dict(mnist_path="/data/d'x \"é\"/mnist.npz", capture_dir="/tmp/cap ture\\n", seed=42, threads=3)
EXPECTED = {"mnist": "/data/d'x \"é\"/mnist.npz", "capture_dir": "/tmp/cap ture\\n", "seed": 42, "threads": 3,
            "steps_per_execution": STEPS_PER_EXECUTION, "failed": {"q2": "la question n'a « pas » été complétée"}}


def test_preamble_compiles_and_carries_the_runtime_and_the_config():
    """Boot function, one call with the real runtime's source and the config as JSON, then the boot deleted."""
    source = preamble_source(**CONFIG_ARGS, failed=EXPECTED["failed"])
    tree = ast.parse(source)
    compile(tree, "<preamble>", "exec")
    boot, call, delete = tree.body
    assert isinstance(boot, ast.FunctionDef) and boot.name == "_autograder_boot"
    assert isinstance(delete, ast.Delete) and [t.id for t in delete.targets] == ["_autograder_boot"]
    assert call.value.func.id == "_autograder_boot"
    assert ast.literal_eval(call.value.args[0]) == runtime_sources()
    config = call.value.args[1]      # json.loads("..."): decoded in the kernel
    assert ast.unparse(config.func) == "__import__('json').loads"
    assert json.loads(ast.literal_eval(config.args[0])) == EXPECTED
    package = ast.parse(dict(runtime_sources())["__init__"])
    exposed = {a.asname or a.name for node in package.body if isinstance(node, ast.ImportFrom) for a in node.names}
    # What the hidden steps call, and the configuration the otter plugin reads (_state["config"]).
    assert {"install", "begin", "capture", "memo_snapshot", "memo_record", "memo_restore", "_state"} <= exposed


def test_the_runtime_ships_every_module_of_its_package_each_after_those_it_imports():
    """The kernel gets the package as it is: every module, each after the modules it imports, the package's
    own source last; its modules import each other only (relative imports within the package)."""
    sources = runtime_sources()
    names = [name for name, _ in sources]
    package = Path(plan.__file__).resolve().parents[1] / "kernel" / "runtime"
    assert sorted(names) == sorted(p.stem for p in package.glob("*.py")) and names[-1] == "__init__"
    for i, (name, source) in enumerate(sources):
        imports = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom) and node.level]
        assert all(node.level == 1 and node.module for node in imports), name
        assert {node.module for node in imports} <= set(names[:i]), name


def test_preamble_installs_the_runtime_as_a_module_and_leaves_the_namespace_clean(monkeypatch):
    """Run with a stub runtime: install(config) gets the exact config; the student's globals gain nothing; the
    package and its module are made as the import system makes them (relative imports resolve)."""
    stub_runtime(monkeypatch)
    namespace = {}
    exec(compile(preamble_source(**CONFIG_ARGS, failed=EXPECTED["failed"]), "<preamble>", "exec"), namespace)
    assert set(namespace) == {"__builtins__"}
    package, module = sys.modules[RUNTIME_MODULE], sys.modules[RUNTIME_MODULE + ".calls"]
    assert (package.__name__, package.__package__, package.__path__) == (RUNTIME_MODULE, RUNTIME_MODULE, [])
    assert (module.__name__, module.__package__) == (RUNTIME_MODULE + ".calls", RUNTIME_MODULE)
    assert package.calls is module and package.CALLS is module.CALLS
    assert package.CALLS == [("install", EXPECTED)]


def test_preamble_passes_booleans_and_none_through(monkeypatch):
    stub_runtime(monkeypatch)
    exec(compile(preamble_source("/m", "/c", 1, 1, accelerate=False, public=True, limit=None), "<preamble>", "exec"),
         {})
    assert sys.modules[RUNTIME_MODULE].CALLS == [
        ("install", {"mnist": "/m", "capture_dir": "/c", "seed": 1, "threads": 1, "steps_per_execution": 0,
                     "public": True, "limit": None})]     # accelerate=False: every fit as the student wrote it
