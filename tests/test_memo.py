"""The instructor's first cells, recorded once and replayed in each grading kernel (notebook/memo.py).

- The runtime, in plain processes: what a replay gives back (values, references to objects that
  were already there, modules, printed text), and the cells it refuses to record.
- The plan: only cells behind the very prefix they were recorded behind are replayed.
- The recording of the real template, made by the suite's corpus run: its slow cells are recorded.
The grades and outputs of replayed notebooks are compared with unreplayed ones in test_acceleration.py.
"""

import copy
import json
import os
import subprocess
import sys
import textwrap

import nbformat

from autograder.core.config import load_config
from autograder.core.mnist_data import ensure_mnist
from autograder.pipeline.memo import prefix_memo
from autograder.notebook.memo import CellMemo, PrefixMemo, cell_key, instructor_prefix, with_memo
from autograder.notebook.prepare import prepare
from tests.conftest import ROOT

CONFIG = load_config()
TEMPLATE = nbformat.read(CONFIG.student, as_version=4)

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from autograder.kernel import runtime as rt

    X = np.arange(12.0).reshape(3, 4)
    CASES = {
        "recorded": "big = X * 2\\npair = (X, 3)\\nlookup = {'x': X}\\nimport json as j2\\nprint('done')",
        "in_place": "X += 1",
        "random": "noise = np.random.rand()",
        "deleted": "del X",
        "function": "def f():\\n    return 1",
    }
    where, mode = sys.argv[1], sys.argv[2]


    def record(name, code):
        namespace = globals()            # the runtime's user namespace outside IPython: __main__'s
        saved = dict(namespace)
        rt.memo_snapshot()
        exec(code, namespace)
        rt.memo_record(f"{where}/{name}.pkl", 0.0)
        namespace.clear()
        namespace.update(saved)
        return json.load(open(f"{where}/{name}.pkl.json"))


    if mode == "record":
        reports = {name: record(name, code) for name, code in CASES.items()}
        rt.memo_snapshot()
        rt.memo_record(f"{where}/quick.pkl", 60.0)
        reports["quick"] = json.load(open(f"{where}/quick.pkl.json"))
        print(json.dumps(reports))
    elif mode == "gone":
        rt.memo_restore(f"{where}/missing.pkl", [["stdout", "never shown\\n"]], CASES["recorded"])
        print(json.dumps({"big": big.tolist(), "module": j2 is json}))
    else:
        rt.memo_restore(f"{where}/recorded.pkl", [["stdout", "printed again\\n"]], "raise SystemExit(3)")
        print(json.dumps({"big": big.tolist(), "pair_is_X": pair[0] is X, "lookup_is_X": lookup["x"] is X,
                          "module": j2 is json, "three": pair[1]}))
""")


def run(where, mode):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(where), mode], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()


def test_a_replay_binds_the_same_values_and_keeps_references_to_what_was_there(tmp_path):
    reports = json.loads(run(tmp_path, "record")[-1])
    assert reports["recorded"]["refused"] is None
    assert reports["recorded"]["names"] == ["big", "j2", "lookup", "pair"]
    printed, restored = run(tmp_path, "restore")
    assert printed == "printed again"
    assert json.loads(restored) == {"big": [[0.0, 2.0, 4.0, 6.0], [8.0, 10.0, 12.0, 14.0], [16.0, 18.0, 20.0, 22.0]],
                                    "pair_is_X": True, "lookup_is_X": True, "module": True, "three": 3}


def test_a_recording_deleted_by_student_code_is_replaced_by_running_the_cell(tmp_path):
    printed, restored = run(tmp_path, "gone")
    assert printed == "done"
    assert json.loads(restored) == {"big": [[0.0, 2.0, 4.0, 6.0], [8.0, 10.0, 12.0, 14.0], [16.0, 18.0, 20.0, 22.0]],
                                    "module": True}


def test_cells_whose_effects_a_replay_could_not_give_back_are_refused(tmp_path):
    reports = json.loads(run(tmp_path, "record")[-1])
    refused = {name: r["refused"] for name, r in reports.items() if name != "recorded"}
    assert refused["in_place"] == "an object changed in place"
    assert refused["random"] == "random numbers drawn"
    assert refused["deleted"] == "names deleted"
    assert refused["function"].startswith("not picklable")
    assert refused["quick"] == "too quick to be worth it"
    assert not any((tmp_path / f"{name}.pkl").exists() for name in refused)


def plan_of(notebook):
    return prepare(notebook, TEMPLATE, "pass").steps


def fake_memo(tmp_path, steps, recorded=("naive-bayes", "regression-lineaire")):
    prefix = [steps[i] for i in instructor_prefix(steps)]
    cells = {}
    for step in prefix:
        if step.cell.master_id in recorded:
            (tmp_path / f"{step.position}.pkl").write_bytes(b"pickle")
            cells[cell_key(step)] = CellMemo(cell_key(step), f"{step.position}.pkl", (("stdout", "vu\n"),))
    return PrefixMemo(tmp_path, tuple(cell_key(s) for s in prefix), cells)


def replayed(steps, memo, where):
    where.mkdir(exist_ok=True)
    return [s.cell.master_id for s, p in zip(steps, with_memo(steps, memo, where)) if p.source != s.source]


def test_recorded_cells_are_replayed_behind_the_same_prefix_only(tmp_path):
    steps = plan_of(TEMPLATE)
    (tmp_path / "memo").mkdir()
    memo = fake_memo(tmp_path / "memo", steps)
    assert replayed(steps, memo, tmp_path / "a") == ["naive-bayes", "regression-lineaire"]
    assert (tmp_path / "a" / os.listdir(tmp_path / "memo")[0]).read_bytes() == b"pickle"
    # An instructor cell the student edited is put back by the mapping: still replayed.
    edited = copy.deepcopy(TEMPLATE)
    edited.cells[next(i for i, c in enumerate(edited.cells) if "GaussianNB()" in c.source)].source += "\nprint(1)"
    assert replayed(plan_of(edited), memo, tmp_path / "b") == ["naive-bayes", "regression-lineaire"]
    # A cell of the student's own before the linear regression: it may change anything after it.
    added = copy.deepcopy(TEMPLATE)
    at = next(i for i, c in enumerate(added.cells) if "OneHotEncoder" in c.source)
    added.cells.insert(at, nbformat.v4.new_code_cell("X_train = X_train[:100]"))
    assert replayed(plan_of(added), memo, tmp_path / "c") == ["naive-bayes"]
    # A memo recorded behind another template: nothing after the first difference.
    other = PrefixMemo(memo.directory, ("installation:0",) + memo.prefix[1:], memo.cells)
    assert replayed(steps, other, tmp_path / "d") == []


def test_the_templates_slow_cell_is_recorded_with_what_it_printed():
    memo = prefix_memo(CONFIG, TEMPLATE, ensure_mnist(log=lambda m: None))    # recorded by the corpus run, or now
    cells = {key.split(":")[0]: cell for key, cell in memo.cells.items()}
    assert "regression-lineaire" in cells
    assert "".join(text for _, text in cells["regression-lineaire"].streams).endswith("Précision : 0.8603\n")
    assert not {"installation", "reshape", "one-hot", "modele-keras"} & set(cells)   # quick: run as written


def test_an_unreadable_recording_means_the_cells_run_as_written(tmp_path, monkeypatch):
    import autograder.pipeline.memo as memo_module

    mnist = tmp_path / "mnist.npz"
    mnist.write_bytes(b"")
    key = memo_module.memo_key(TEMPLATE, CONFIG.limits.seed, CONFIG.limits.threads)
    (tmp_path / "memo" / key).mkdir(parents=True)
    (tmp_path / "memo" / key / "memo.json").write_text("{not json")
    monkeypatch.setattr(memo_module, "_loaded", {})
    logged = []
    assert prefix_memo(CONFIG, TEMPLATE, mnist, log=logged.append) is None
    assert logged and "not recorded" in logged[0]


def test_a_recording_kernel_that_never_starts_means_the_cells_run_as_written(tmp_path, monkeypatch):
    import autograder.pipeline.memo as memo_module
    import autograder.pipeline.stages as stages

    def no_kernel(*args, **kwargs):
        raise RuntimeError("Kernel died before replying to kernel_info")

    monkeypatch.setattr(stages, "execute", no_kernel)     # the recording's Execute stage
    monkeypatch.setattr(memo_module, "_loaded", {})
    logged = []
    assert prefix_memo(CONFIG, TEMPLATE, tmp_path / "mnist.npz", log=logged.append) is None
    assert logged and "not recorded" in logged[0] and "kernel_info" in logged[0]
    assert not (tmp_path / "memo").exists() or not list((tmp_path / "memo").rglob("memo.json"))


def test_a_grader_that_may_not_write_beside_mnist_records_in_its_own_cache(tmp_path, monkeypatch):
    import autograder.pipeline.memo as memo_module

    shared = tmp_path / "cache" / "memo" / "key"
    assert memo_module._directory(shared) == shared                  # root, or whoever owns the cache
    monkeypatch.setattr(memo_module.os, "access", lambda path, mode: False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert memo_module._directory(shared) == tmp_path / "home" / ".cache" / "keras-mnist-autograder" / "memo" / "key"
    monkeypatch.setattr(memo_module.os, "access", lambda path, mode: mode == os.R_OK)
    assert memo_module._directory(shared) == shared                  # a recording made by root, readable
