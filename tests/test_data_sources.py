"""Data that Keras iterates itself: tf.data pipelines, generators, PyDataset.

The batch size and the number of samples come from the data, never from Keras' default of
32; the samples are fingerprinted like arrays; what cannot be inspected is said so.  Real
Keras and tf.data: one process with the kernel runtime installed, one without, the same
fits in both (a few steps on small slices), so the recorder is also shown to change nothing.
"""

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from autograder.rubric import checks
from autograder.rubric.artifacts import load_question
from autograder.notebook.plan import RUNTIME_MODULE, preamble_source
from autograder.kernel.runtime.fingerprints import row_hashes
from autograder.core.mnist_data import ensure_mnist, load_mnist
from tests.conftest import ROOT

SEED = 1234

# Each case: a question name and its code (X, y: 60,000 training rows; Xt, yt: 10,000 test rows).
FITS = {
    # Global seed only: an unseeded shuffle, reshuffled each epoch, would move if the recorder drew a seed.
    "shuffled": "model.fit(tf.data.Dataset.from_tensor_slices((X[:512], y[:512])).shuffle(512).batch(128), epochs=2,"
                " verbose=0)",
    "full_train": "model.fit(tf.data.Dataset.from_tensor_slices((X, y)).shuffle(1000).batch(128).prefetch(2),"
                  " steps_per_epoch=1, verbose=0)\n"
                  "model.evaluate(tf.data.Dataset.from_tensor_slices((Xt, yt)).batch(1000), verbose=0)",
    "mapped_test": "model.fit(tf.data.Dataset.from_tensor_slices((Xt[:300], yt[:300])).map(scale).batch(128), verbose=0)",
    "by_64": "model.fit(tf.data.Dataset.from_tensor_slices((X[:256], y[:256])).batch(64), batch_size=128, verbose=0)",
    "generator": "model.fit(batches(Xt[:256], yt[:256]), epochs=1, verbose=0)",
    "endless_generator": "model.fit(endless(X[:1000], y[:1000]), steps_per_epoch=3, verbose=0)",
    "pydataset": "model.fit(Batches(X[:384], y[:384]), epochs=2, verbose=0)",
    "from_generator": "model.fit(tf.data.Dataset.from_generator(lambda: batches(X[:256], y[:256]), output_signature="
                      "(tf.TensorSpec((None, 784), tf.uint8), tf.TensorSpec((None, 10), tf.float32))), verbose=0)",
    "dict_input": "model.fit({'pixels': X[:200]}, y[:200], batch_size=100, verbose=0)",
}

SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    mode, capture, weights_file = sys.argv[1:4]
    if mode == "recorded":
        exec(open(os.path.join(capture, "preamble.py")).read())
    else:   # the same seeding, with nothing recorded (importing the runtime installs nothing)
        from autograder.kernel.runtime.boot import _seed
        _seed({seed}, 1)
    recorder = sys.modules.get({module!r})
    import numpy as np, tensorflow as tf, keras

    with np.load({mnist!r}) as data:
        X, Xt = data["x_train"].reshape(-1, 784), data["x_test"].reshape(-1, 784)
        y, yt = np.eye(10, dtype="float32")[data["y_train"]], np.eye(10, dtype="float32")[data["y_test"]]

    def scale(x, labels):
        return tf.cast(x, tf.float32) / 255.0, labels

    def batches(x, labels, size=128):
        for i in range(0, len(x), size):
            yield x[i:i + size], labels[i:i + size]

    def endless(x, labels, size=128):
        while True:
            yield from batches(x, labels, size)

    class Batches(keras.utils.PyDataset):
        def __init__(self, x, labels, size=128):
            super().__init__()
            self.x, self.labels, self.size = x, labels, size

        def __len__(self):
            return -(-len(self.x) // self.size)

        def __getitem__(self, i):
            return self.x[i * self.size:(i + 1) * self.size], self.labels[i * self.size:(i + 1) * self.size]

    weights = {{}}
    for question, fit in {fits!r}.items():
        if recorder:
            recorder.begin(question)
        pixels = keras.Input((784,), name="pixels")
        model = keras.Model(pixels, keras.layers.Dense(10, activation="softmax")(pixels))
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        exec(fit)
        if recorder:
            recorder.capture(question)
        for i, w in enumerate(model.get_weights()):
            weights[f"{{question}}/{{i}}"] = w
    assert Batches.__getitem__.__qualname__ == "Batches.__getitem__"   # the PyDataset's class as it was
    np.savez(weights_file, **weights)
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same fits with the recorder installed and without it: (capture dir, weights of both)."""
    mnist_path = ensure_mnist(log=lambda m: None)
    script = SCRIPT.format(seed=SEED, module=RUNTIME_MODULE, mnist=str(mnist_path), fits=FITS)
    dirs = {mode: tmp_path_factory.mktemp(mode) for mode in ("recorded", "plain")}
    capture = dirs["recorded"]
    (capture / "preamble.py").write_text(preamble_source(mnist_path, capture, SEED, 1))

    def run(mode):
        proc = subprocess.run([sys.executable, "-c", script, mode, str(dirs[mode]), str(dirs[mode] / "weights.npz")],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        with np.load(dirs[mode] / "weights.npz") as npz:
            return {k: npz[k] for k in npz.files}

    with ThreadPoolExecutor(2) as pool:
        recorded, plain = pool.map(run, ("recorded", "plain"))
    return capture, recorded, plain


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def fit_of(runs, mnist, question):
    art = load_question(runs[0], question, mnist, measure_accuracy=False)
    assert len(art.question_fits) == 1, art
    return art, art.question_fits[0]


def failure(check, art, **params) -> str:
    with pytest.raises(AssertionError) as info:
        check(art, **params)
    return str(info.value)


def test_recorder_changes_no_training_result(runs):
    _, recorded, plain = runs
    assert recorded.keys() == plain.keys()
    for key in recorded:
        np.testing.assert_array_equal(recorded[key], plain[key], err_msg=key)


def test_shuffled_dataset_of_the_training_set(runs, mnist):
    art, fit = fit_of(runs, mnist, "full_train")
    assert (fit.batch_size, fit.batch_size_how, fit.samples, fit.test_rows, fit.unreadable) == (128, "data", 60000, 0, None)
    checks.trained_on_training_set(art)
    checks.fit_arguments(art, batch_size=128, epochs=1)
    assert fit_raw(runs, "full_train")["row_hashes"] == row_hashes(mnist.x_train)   # the source rows, in order
    assert art.test_inputs == "genuine"    # evaluate on an unshuffled, unmapped dataset of X_test
    _, fit = fit_of(runs, mnist, "shuffled")
    assert (fit.batch_size, fit.samples, fit_raw(runs, "shuffled")["epochs_run"]) == (128, 512, 2)


def test_mapped_dataset_of_test_images_is_seen(runs, mnist):
    art, fit = fit_of(runs, mnist, "mapped_test")
    assert (fit.batch_size, fit.samples, fit.test_rows) == (128, 300, 300)
    # Mapped rows are not the model's inputs: no training head to guess the input space from.
    assert not (runs[0] / "mapped_test" / "inputs.npz").exists() or \
        "fit_head_x" not in np.load(runs[0] / "mapped_test" / "inputs.npz").files


def test_batch_size_comes_from_the_dataset(runs, mnist):
    art, fit = fit_of(runs, mnist, "by_64")
    assert (fit.batch_size, fit.batch_size_how, fit.samples) == (64, "data", 256)
    message = failure(checks.fit_arguments, art, batch_size=128, epochs=1)
    assert "taille utilisée : 64" in message and "32" not in message


@pytest.mark.parametrize("question, samples, test_rows", [
    ("generator", 256, 256),            # runs out after its first epoch
    ("endless_generator", 384, 0),      # steps_per_epoch=3 batches of 128
    ("pydataset", 384, 0),
])
def test_batches_seen_during_the_fit(runs, mnist, question, samples, test_rows):
    art, fit = fit_of(runs, mnist, question)
    assert (fit.batch_size, fit.batch_size_how, fit.samples, fit.test_rows, fit.unreadable) == (
        128, "data", samples, test_rows, None)
    checks.fit_arguments(art, batch_size=128, epochs=fit.epochs)
    source = mnist.x_test if test_rows else mnist.x_train
    assert fit_raw(runs, question)["row_hashes"] == row_hashes(source[:samples])


def test_from_generator_dataset_is_said_uninspectable(runs, mnist):
    art, fit = fit_of(runs, mnist, "from_generator")
    assert (fit.batch_size, fit.samples, fit.test_rows) == (None, None, 0)
    assert fit.unreadable == "un tf.data.Dataset construit avec from_generator()"
    for check, params in ((checks.fit_arguments, {"batch_size": 128, "epochs": 1}), (checks.trained_on_training_set, {})):
        message = failure(check, art, **params)
        assert "n'ont pas pu être examinées" in message and "from_tensor_slices" in message, message
        assert "32" not in message, message


def test_dict_input_is_read_through_its_array(runs, mnist):
    _, fit = fit_of(runs, mnist, "dict_input")
    assert (fit.batch_size, fit.batch_size_how, fit.samples, fit.unreadable) == (100, "keyword", 200, None)


def fit_raw(runs, question):
    calls = json.loads((runs[0] / question / "calls.json").read_text())["calls"]
    return next(c for c in calls if c["kind"] == "fit")


def test_rows_are_hashed_once_per_array_and_always_for_data_without_a_digest():
    from autograder.kernel.runtime.fingerprints import _fingerprint_training
    from autograder.kernel.runtime.inputs import _array_info

    first, second = np.arange(12.0).reshape(3, 4), np.arange(12.0, 24.0).reshape(3, 4)
    entries = [{"x": info, "model": 0} for info in (_array_info(first), _array_info(first),
                                                    {"kind": "tf.data"}, {"kind": "tf.data"})]
    for entry, rows in zip(entries, (first, first, first, second)):
        _fingerprint_training(entry, rows)
    assert entries[0]["row_hashes"] is entries[1]["row_hashes"] == row_hashes(first)   # one array: hashed once
    assert entries[2]["row_hashes"] == row_hashes(first)
    assert entries[3]["row_hashes"] == row_hashes(second)     # another dataset: its own rows


def test_training_outside_fit_is_fingerprinted_as_a_fit_is(monkeypatch):
    """One fingerprint step serves both: a session's distinct rows, seen over several batches and again, get
    the hashes, projections and spectra a fit on those rows gets."""
    from autograder.kernel.runtime.fingerprints import _fingerprint_training
    from autograder.kernel.runtime.inputs import _array_info
    from autograder.kernel.runtime.state import _state
    from autograder.kernel.runtime.training import _Session

    for key in ("calls", "projections", "spectra", "fit_heads", "row_hashes"):
        monkeypatch.setitem(_state, key, {} if key != "calls" else [])
    rows = np.random.default_rng(0).integers(0, 256, (300, 784), dtype=np.uint8)
    fit = {"x": _array_info(rows), "model": 1}
    _fingerprint_training(fit, rows)
    session = _Session(2, "custom_loop")
    for batch in (rows[:100], rows[:200], rows[100:]):
        session.add(batch)
    session.finish()
    entry = session.entry
    assert (entry["x"]["n"], entry["x"]["distinct"], entry["row_hashes"]) == (500, 300, fit["row_hashes"])
    for kind in ("projections", "spectra"):     # float32 products: batches of other sizes round a little otherwise
        session_rows, fit_rows = _state[kind][entry["projection"]], _state[kind][fit["projection"]]
        assert np.abs(session_rows - fit_rows).max() <= 1e-5 * np.abs(fit_rows).max()
    assert np.array_equal(_state["fit_heads"][2], _state["fit_heads"][1])
