"""The kernel runtime's record of training outside fit and of each model's weight lineage, run in a real
Python process with real Keras (no Jupyter kernel: the runtime is installed by the preamble itself).

One process runs every scenario (TensorFlow is imported once); each scenario trains small models on its own
random rows, so a session's rows can be told apart by their count."""

import json
import subprocess
import sys

import pytest

from autograder.notebook.plan import RUNTIME_MODULE, preamble_source

SCENARIOS = r'''
import inspect, json, sys, tempfile
import numpy as np
exec(sys.stdin.read())          # the preamble
runtime = sys.modules[sys.argv[1]]
import keras, tensorflow as tf

rng = np.random.default_rng(0)
data = lambda n: (rng.random((n, 784), dtype=np.float32), np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)])
X, Y = data(512)          # "training images"
T, U = data(320)          # "test images"

def make():
    model = keras.Sequential([keras.Input((784,)), keras.layers.BatchNormalization(),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model

def tape_step(model, optimizer, x, y, training=True):
    with tf.GradientTape() as tape:
        loss = keras.losses.categorical_crossentropy(y, model(x, training=training) if training else model(x))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))

def eager_loop(model):
    optimizer = keras.optimizers.Adam()
    for epoch in range(2):
        for i in range(0, len(X), 64):
            tape_step(model, optimizer, X[i:i + 64], Y[i:i + 64])

def graph_loop(model):
    step = tf.function(tape_step)
    for epoch in range(3):
        for i in range(0, len(X), 128):
            step(model, model.optimizer, tf.constant(X[i:i + 128]), tf.constant(Y[i:i + 128]))

def eager_loop_without_training_flag(model):
    optimizer = keras.optimizers.Adam()
    for i in range(0, len(X), 64):
        model(T)                            # an evaluation between steps is not training data
        tape_step(model, optimizer, X[i:i + 64], Y[i:i + 64], training=False)

def on_batch(model):
    for i in range(0, len(X), 32):
        model.train_on_batch(X[i:i + 32], Y[i:i + 32])

def keras_fit_from_the_class_hierarchy(model):
    model.fit(X, Y, verbose=0)
    fit = next(c.__dict__["fit"] for c in type(model).__mro__ if "fit" in c.__dict__)
    fit(model, T, U, verbose=0)

def twin_weights(model):
    model.fit(X, Y, verbose=0)
    twin = make()
    twin.fit(T, U, verbose=0)
    model.set_weights(twin.get_weights())

def fit_from_the_recorders_closure(model):
    model.fit(X, Y, verbose=0)               # traces and caches the train function (no acceleration here)
    fit = next(c.__dict__["fit"] for c in type(model).__mro__ if "fit" in c.__dict__)
    original = next(c.cell_contents for c in fit.__closure__ if getattr(c.cell_contents, "__name__", "") == "fit")
    original(model, T, U, verbose=0)

def assigned_by_hand(model):
    model.fit(X, Y, verbose=0)
    model.layers[-1].kernel.assign(model.layers[-1].kernel + 0.01)

def two_models_assigned_by_hand(model):
    other = make()
    other.fit(T, U, verbose=0)
    model.fit(X, Y, verbose=0)
    for changed in (model, other):
        changed.layers[-1].bias.assign(changed.layers[-1].bias + 0.01)

def loaded_from_a_file(model):
    other = make()
    other.build((None, 784))
    path = tempfile.mkdtemp() + "/w.weights.h5"
    other.set_weights([w + 0.5 for w in other.get_weights()])
    other.save_weights(path)
    model.load_weights(path)

def dropout_predictions_on_test_images(model):
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dropout(0.5),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(X, Y, verbose=0)
    samples = np.mean([model(T, training=True) for _ in range(5)], axis=0)     # Monte Carlo dropout
    return model

def batchnorm_statistics_from_test_images(model):
    model.fit(X, Y, verbose=0)
    model(T, training=True)                  # moves BatchNormalization's statistics towards the test images

def built_and_predicted_only(model):
    model.predict(T, verbose=0)
    model(T[:5])

results = {}
for scenario in [eager_loop, graph_loop, eager_loop_without_training_flag, on_batch,
                 keras_fit_from_the_class_hierarchy, twin_weights, fit_from_the_recorders_closure,
                 assigned_by_hand, two_models_assigned_by_hand, loaded_from_a_file, dropout_predictions_on_test_images,
                 batchnorm_statistics_from_test_images, built_and_predicted_only]:
    runtime._state["calls"].clear()
    runtime.begin(scenario.__name__)
    model = make()
    model = scenario(model) or model
    runtime.lineage._observe(model)
    for session in runtime._state["sessions"].values():
        session.finish()
    uid = runtime.state._uid(model)
    lineage = runtime.lineage._lineage(uid)
    results[scenario.__name__] = [
        {k: c[k] for k in ("kind", "via", "from", "steps", "model_optimizer_steps") if k in c}
        | {"own": c.get("model") == uid, "rows": (c.get("x") or {}).get("n"),
           "distinct": len(c.get("row_hashes") or []) or None}
        for c in runtime._state["calls"] if c.get("model") in lineage and c["kind"] not in ("predict", "evaluate")]
fit = next(c.__dict__["fit"] for c in keras.Sequential.__mro__ if "fit" in c.__dict__)
results["unwrapped"] = [inspect.unwrap(f) is f and not hasattr(f, "__wrapped__") for f in
                        (fit, keras.Layer.__call__, keras.optimizers.Optimizer.apply)]
print("RESULTS" + json.dumps(results))
'''


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    preamble = preamble_source("unused.npz", tmp_path_factory.mktemp("capture"), 0, 1, accelerate=False)
    proc = subprocess.run([sys.executable, "-c", SCENARIOS, RUNTIME_MODULE], input=preamble, capture_output=True,
                          text=True, timeout=600, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULTS", 1)[1])


def test_custom_loops_eager_and_traced_are_training_with_their_batches(results):
    assert results["eager_loop"] == [{"kind": "train", "via": "custom_loop", "steps": 16, "model_optimizer_steps": 0,
                                      "own": True, "rows": 1024, "distinct": 512}]
    # The compiled optimizer: its updates count against the saved optimizer's step count.
    assert results["graph_loop"] == [{"kind": "train", "via": "custom_loop", "steps": 12, "model_optimizer_steps": 12,
                                      "own": True, "rows": 1536, "distinct": 512}]


def test_a_loop_without_training_true_trains_on_the_batch_before_each_update(results):
    assert results["eager_loop_without_training_flag"] == [
        {"kind": "train", "via": "custom_loop", "steps": 8, "model_optimizer_steps": 0, "own": True,
         "rows": 512, "distinct": 512}]


def test_train_on_batch_is_a_session_of_its_own(results):
    assert results["on_batch"] == [{"kind": "train", "via": "train_on_batch", "steps": 16, "model_optimizer_steps": 16,
                                    "own": True, "rows": 512, "distinct": 512}]


def test_keras_fit_found_through_the_class_hierarchy_is_the_recorded_one(results):
    assert [(c["kind"], c["rows"]) for c in results["keras_fit_from_the_class_hierarchy"]] == [("fit", 512), ("fit", 320)]


def test_copied_weights_carry_the_sources_training(results):
    lineage = results["twin_weights"]
    assert [(c["kind"], c["own"], c["rows"]) for c in lineage] == [("fit", True, 512), ("fit", False, 320),
                                                                   ("copy", True, None)]


@pytest.mark.parametrize("scenario", ["fit_from_the_recorders_closure", "assigned_by_hand",
                                      "two_models_assigned_by_hand", "loaded_from_a_file"])
def test_weights_changed_by_no_recorded_cause_are_unaccounted(results, scenario):
    assert results[scenario][-1]["kind"] == "unaccounted"


def test_forward_passes_in_training_mode_train_only_when_they_change_the_model(results):
    assert [c["kind"] for c in results["dropout_predictions_on_test_images"]] == ["fit"]
    assert [(c["kind"], c.get("via"), c["rows"]) for c in results["batchnorm_statistics_from_test_images"]] == [
        ("fit", None, 512), ("train", "custom_loop", 320)]


def test_a_model_only_built_and_used_has_no_lineage_events(results):
    assert results["built_and_predicted_only"] == []


def test_nothing_leads_back_from_the_recorder_to_the_methods_it_wraps(results):
    assert results["unwrapped"] == [True, True, True]
