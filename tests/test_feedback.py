"""The student's feedback page: its figures are what the captured model gives, and it opens in a real browser.

One real Python process with the kernel runtime (installed by the preamble, no Jupyter kernel) trains a
small model and captures it as grading does; this process scores the capture like the scoring process and
computes the same figures again, independently, from the saved model. The browser test opens a page of the
graded corpus (a session fixture: nothing graded again).
"""

import html
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from autograder.core.config import Feedback, load_config
from autograder.core.mnist_data import ensure_mnist, shared_mnist
from autograder.core.results import CheckOutcome, GradeReport, Status
from autograder.kernel.runtime.format import MODEL_FILE
from autograder.notebook.plan import RUNTIME_MODULE, preamble_source
from autograder.pipeline.feedback import render_feedback
from autograder.rubric.artifacts import load_question, load_model
from autograder.rubric.measures import MISTAKES, measured

from .test_browser import browser  # noqa: F401 - the fixture

CONFIG = load_config()

NOTEBOOK = r'''
import json, sys
exec(sys.stdin.read())          # the preamble
runtime = sys.modules[sys.argv[1]]
import keras
(X_train, y_train), (X_test, y_test) = keras.datasets.mnist.load_data()
X_train, X_test = X_train.reshape(-1, 784) / 255.0, X_test.reshape(-1, 784) / 255.0
Y_train = keras.utils.to_categorical(y_train, 10)
runtime.begin("q1")
model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(24, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
history = model.fit(X_train[:6000], Y_train[:6000], batch_size=128, epochs=3, validation_split=0.2, verbose=0)
model.predict(X_test, verbose=0)
runtime.capture("q1")
print("HISTORY" + json.dumps(history.history))
'''


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    capture = tmp_path_factory.mktemp("capture")
    preamble = preamble_source(ensure_mnist(), capture, 0, 1, accelerate=False)
    proc = subprocess.run([sys.executable, "-c", NOTEBOOK, RUNTIME_MODULE], input=preamble, capture_output=True,
                          text=True, timeout=600, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    mnist = shared_mnist()
    art = load_question(capture, "q1", mnist)
    return capture, art, measured(art, mnist.y_test), json.loads(proc.stdout.split("HISTORY", 1)[1])


def test_the_figures_are_those_of_the_captured_model(captured):
    capture, art, m, history = captured
    mnist = shared_mnist()
    model = load_model(capture / "q1" / MODEL_FILE)
    predicted = np.argmax(model.predict(mnist.x_test.reshape(-1, 784) / 255.0, verbose=0), axis=1)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (mnist.y_test, predicted), 1)
    assert np.array_equal(np.array(m.confusion), confusion) and confusion.sum() == 10_000
    assert m.accuracy == np.trace(confusion) / 10_000 == float(np.mean(predicted == mnist.y_test))
    assert len(m.mistakes) == MISTAKES and len({i for i, _, _ in m.mistakes}) == MISTAKES
    assert all(mnist.y_test[i] == t != p == predicted[i] for i, t, p in m.mistakes)
    # The most frequent confusion is among the images shown.
    off = confusion - np.diag(np.diag(confusion))
    assert tuple(int(d) for d in np.unravel_index(off.argmax(), off.shape)) in {(t, p) for _, t, p in m.mistakes}
    assert [(layer.kind, layer.units, layer.activation) for layer in m.model.layers] == [
        ("Dense", 24, "relu"), ("Dense", 10, "softmax")]
    assert m.model.params == model.count_params() == 784 * 24 + 24 + 24 * 10 + 10
    (fit,) = m.fits
    assert (fit.batch_size, fit.epochs, fit.samples, fit.via) == (128, 3, 6000, "fit")
    assert fit.history == history and set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_the_page_shows_those_figures_and_hides_what_the_course_hides(captured):
    _, _, m, _ = captured
    outcomes = {c.number: CheckOutcome(c.number, c.number != "q1.4", "trop bas") for c in CONFIG.checks}
    report = GradeReport.of(CONFIG, "élève", Status.OK, outcomes, measurements={"q1": m}, duration_s=1.0)
    page = html.unescape(render_feedback(CONFIG, report, shared_mnist()))
    assert f"{m.accuracy * 100:.2f} %" in page and "seuil de la grille : 80 %" in page
    assert page.count('alt="Image de test n°') == MISTAKES and page.count("data:image/svg+xml") == 1
    t, p, n = max(((t, p, n) for t, row in enumerate(m.confusion) for p, n in enumerate(row) if t != p),
                  key=lambda x: x[2])
    assert f"un {t} pris pour un {p} ({n} fois)" in page
    assert CONFIG.checks[3].hint in page                    # q1.4 failed: its hint; the others passed
    assert CONFIG.checks[0].hint not in page
    assert len(page.encode()) < 400_000
    # results.json's output of the accuracy check carries the same figures.
    q14 = next(t for t in report.to_gradescope_dict()["tests"] if t["number"] == "q1.4")
    assert f"précision {m.accuracy * 100:.2f} %" in q14["output"] and "trop bas" in q14["output"]
    quiet = replace(CONFIG, feedback=Feedback(accuracy=False, mistakes=False, confusion=False, hints=False))
    page = html.unescape(render_feedback(quiet, GradeReport.of(quiet, "élève", Status.OK, outcomes,
                                                               measurements={"q1": m}, duration_s=1.0), shared_mnist()))
    assert f"{m.accuracy * 100:.2f} %" not in page and "Image de test" not in page and "Matrice de confusion" not in page
    assert CONFIG.checks[3].hint not in page and "Dense" in page          # the model is still shown


def test_a_graded_feedback_page_in_a_real_browser_and_its_screenshot(browser, graded, tmp_path):  # noqa: F811
    page = graded.out / "solution" / "feedback.html"
    assert page.stat().st_size < 400_000
    browser.set_window_size(1000, 1000)
    browser.get(page.as_uri())
    assert browser.title == "Retour de correction : solution"
    images = browser.execute_script("return Array.from(document.images, i => [i.complete, i.naturalWidth, i.alt])")
    assert len(images) >= 4 * MISTAKES and all(done and width > 0 and alt for done, width, alt in images), images
    assert browser.execute_script(
        "return Array.from(document.querySelectorAll('script[src], link[href], img'))"
        ".filter(e => !(e.src || e.href || '').startsWith('data:')).length") == 0, "nothing outside the page"
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    browser.set_window_size(400, 900)           # a phone: nothing wider than the screen but the tables' scrollers
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1000, min(height, 2600))
    shot = tmp_path / "feedback.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 50_000
    if os.environ.get("AUTOGRADER_FEEDBACK_SCREENSHOT"):
        shutil.copy(shot, os.environ["AUTOGRADER_FEEDBACK_SCREENSHOT"])
