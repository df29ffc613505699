"""Acceleration changes no result, and a grading worker that dies costs no submission its grade.

- The corpus graded by the suite (accelerated, the default) against the solution and the
  single-defect notebooks graded again with `--no-accelerate`, under another rubric (other
  thresholds and points): the accelerated grades rescored under that rubric from their kept
  artifacts (`autograder rescore`) have the same check outcomes, points and outputs, the same
  measured accuracies digit for digit and the same recorded trainings; and the same outputs of
  the instructor's cells (replayed from the memo when accelerated, run when not).  One comparison
  proves both: acceleration changes nothing, and a rescore gives what a regrade gives.
- The runtime's `steps_per_execution` rule, in a plain process: which fits it accelerates, and
  that an accelerated fit leaves the same weights as the fit as written.
- A grading worker killed while it grades: every submission still gets its grade.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from autograder.notebook.mapping import question_of
from autograder.runner.forked import OWNER
from tests.conftest import CELL_TIMEOUT, CORPUS, MEMORY_MB, ROOT, graded_copy, q1_only_notebooks

# Acceleration changes how fits run: the notebooks whose fits differ (batch size, epochs, training on test
# images, too little training), and the solution; a model's structure is read the same way either way.
SINGLE_DEFECT = ["solution", "batch_64", "epochs_3", "trained_on_test", "undertrained"]


# No notebook of the proof loops: a timeout there would only measure the machine's hour (trained_on_test's
# q4, 70,000 rows without acceleration, once took over 30 s beside otter's two containers in CI).
PROOF_CELL_TIMEOUT = "120"


def grade(paths, out, *options, cell_timeout=CELL_TIMEOUT, config=None):
    rubric = ["--config", str(config)] if config else []
    return subprocess.Popen([sys.executable, "-m", "autograder", *rubric, "grade", *map(str, paths), "--out", str(out),
                             "--cell-timeout", cell_timeout, "--memory-mb", MEMORY_MB, *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def unaccelerated(tmp_path_factory, rubric_b):
    out = tmp_path_factory.mktemp("unaccelerated")
    proc = grade([CORPUS / f"{name}.ipynb" for name in SINGLE_DEFECT], out, "--workers", "2", "--no-accelerate",
                 cell_timeout=PROOF_CELL_TIMEOUT, config=rubric_b)
    _, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.fixture(scope="module")
def rescored_b(graded, rubric_b, tmp_path_factory):
    """The accelerated grades of the same notebooks, rescored under the same other rubric."""
    out = graded_copy(graded.out, SINGLE_DEFECT, tmp_path_factory.mktemp("rescored"))
    proc = subprocess.run([sys.executable, "-m", "autograder", "--config", str(rubric_b), "rescore", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return out, proc.stdout


def outcome(results: dict) -> dict:
    """What acceleration (and rescoring) must not change: every check's score, status and output, the
    status, every measurement the grade depends on, every recorded training."""
    measured = results["extra_data"]["measurements"]
    return {
        "status": results["status"],
        "checks": {t["number"]: (t["score"], t["status"], t["output"]) for t in results["tests"]},
        "measured": {q: (m["accuracy"], m["test_inputs"], m["fits"]) for q, m in measured.items()},
    }


@pytest.mark.parametrize("name", SINGLE_DEFECT)
def test_acceleration_and_rescoring_change_no_check_and_no_measured_accuracy(rescored_b, unaccelerated, name):
    accelerated = outcome(json.loads((rescored_b[0] / name / "results.json").read_text()))
    plain = outcome(json.loads((unaccelerated / name / "results.json").read_text()))
    assert accelerated == plain
    assert all(m[0] is not None for m in plain["measured"].values())      # accuracies were measured, not None twice
    assert plain["checks"]["q3.1"][0] in (0, 2) and "seuil 93 %" in plain["checks"]["q3.2"][2]   # rubric B's


def instructor_outputs(executed) -> list:
    """The outputs of the cells before the first question: replayed from the memo when accelerated."""
    cells = nbformat.read(executed, as_version=4).cells
    first = next(i for i, c in enumerate(cells) if question_of(c))
    shown = json.dumps([c.outputs for c in cells[:first] if c.cell_type == "code"], ensure_ascii=False)
    return json.loads(re.sub(r" at 0x[0-9a-f]+>", " at 0x…>", shown))     # reprs name an address of that run


@pytest.mark.parametrize("name", SINGLE_DEFECT)
def test_replayed_instructor_cells_show_what_running_them_shows(graded, unaccelerated, name):
    accelerated = instructor_outputs(graded.out / name / "executed.ipynb")
    plain = instructor_outputs(unaccelerated / name / "executed.ipynb")
    assert accelerated == plain
    assert any("Précision : 0.8603" in o.get("text", "") for outputs in plain for o in outputs)


RULE = textwrap.dedent("""
    import hashlib, json, sys, tempfile
    import numpy as np
    import keras
    from autograder.core.mnist_data import ensure_mnist
    from autograder.kernel import runtime as rt

    rt.install({"mnist": str(ensure_mnist()), "capture_dir": tempfile.mkdtemp(), "seed": 1234, "threads": 1,
                "steps_per_execution": int(sys.argv[1])})
    rng = np.random.default_rng(0)
    X = rng.random((640, 784), dtype=np.float32)
    Y = np.eye(10)[rng.integers(0, 10, 640)]

    def model(**compile_args):
        m = keras.Sequential([keras.Input((784,)), keras.layers.BatchNormalization(),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dropout(0.2),
                              keras.layers.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="categorical_crossentropy", **compile_args)
        return m

    def generator():
        for i in range(0, 640, 64):
            yield X[i:i + 64], Y[i:i + 64]

    class EveryBatch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    cases = {
        "plain": lambda m: m.fit(X, Y, batch_size=16, epochs=2, verbose=0),
        "validation_and_early_stopping": lambda m: m.fit(X, Y, batch_size=16, epochs=2, verbose=0, validation_split=0.2,
                                                         callbacks=[keras.callbacks.EarlyStopping(patience=5)]),
        "batch_callback": lambda m: m.fit(X, Y, batch_size=16, epochs=2, verbose=0, callbacks=[EveryBatch()]),
        "generator": lambda m: m.fit(generator(), epochs=1, verbose=0),
        "steps_per_epoch": lambda m: m.fit(X, Y, batch_size=16, epochs=2, steps_per_epoch=10, verbose=0),
    }
    out = {}
    for name, fit in cases.items():
        m = model()
        fit(m)
        out[name] = [rt._state["calls"][-1].get("accelerated"), m.steps_per_execution,
                     hashlib.sha256(b"".join(w.tobytes() for w in m.get_weights())).hexdigest()]
    m = model(steps_per_execution=1)
    m.fit(X, Y, batch_size=16, verbose=0)
    out["explicit"] = [rt._state["calls"][-1].get("accelerated"), m.steps_per_execution, ""]
    print(json.dumps(out))
""")


def run_rule(steps: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", RULE, str(steps)], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_runtime_accelerates_only_fits_it_cannot_change():
    on, off = run_rule(16), run_rule(0)    # 40 batches an epoch: executions of 16, 16 and 8
    accelerated = {name for name, (steps, _, _) in on.items() if steps}
    assert accelerated == {"plain", "validation_and_early_stopping"}
    assert all(steps is None for steps, _, _ in off.values())
    assert all(after == 1 for _, after, _ in on.values())       # the model is given back as the student left it
    for name in on:
        assert on[name][2] == off[name][2], name                 # the same weights, accelerated or not


def grading_workers(grader: psutil.Process) -> list[psutil.Process]:
    """The grader's worker processes that are running a kernel right now."""
    found = []
    for child in grader.children():
        try:
            if "spawn_main" in " ".join(child.cmdline()) and any(
                    "ipykernel_launcher" in " ".join(p.cmdline()) for p in child.children(recursive=True)):
                found.append(child)
        except psutil.Error:
            pass
    return found


def test_a_killed_grading_worker_costs_no_submission_its_grade(tmp_path):
    paths = q1_only_notebooks(tmp_path, 3)
    out = tmp_path / "out"
    proc = grade(paths, out, "--workers", "2")
    grader = psutil.Process(proc.pid)
    deadline = time.monotonic() + 300
    while not grading_workers(grader) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    victims = grading_workers(grader)
    assert victims, "no worker was ever seen grading"
    # Its own slot, by the owner lock it holds: other tests' graders may leave orphans of their own meanwhile.
    slots = [Path(f.path).parent for f in victims[0].open_files() if Path(f.path).name == OWNER]
    assert slots, "the worker holds no slot"
    victims[0].send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    for path in paths:
        results = json.loads((out / path.stem / "results.json").read_text())
        q1 = [t for t in results["tests"] if t["number"].startswith("q1.")]
        assert results["status"] == "ok", path.stem
        assert q1 and all(t["status"] == "passed" for t in q1), results["tests"]
        assert results["score"] == sum(t["max_score"] for t in q1)
    assert not [slot for slot in slots if slot.exists()], "the killed worker's slot directory was left behind"
