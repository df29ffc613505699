"""Fast tests of the pure stages: input-space matching and the rubric check functions."""

from dataclasses import replace

import numpy as np
import pytest

from autograder.core import messages
from autograder.rubric import checks
from autograder.rubric.artifacts import (FitCall, Layer, ModelInfo, Prediction, QuestionArtifacts, _fit_call,
                                         lineage_calls)
from autograder.core.mnist_data import shared_mnist
from autograder.rubric.inputs import RELATIVE_TOLERANCE, fit_input_space

RNG = np.random.default_rng(0)
GENUINE = RNG.integers(0, 256, size=(500, 28, 28), dtype=np.uint8)
GENUINE[:, 0, 0] = 0   # a pixel that never varies, like MNIST's borders


@pytest.mark.parametrize("transform", [
    lambda g: g.reshape(len(g), 784),
    lambda g: g.reshape(len(g), 784).astype("float32") / 255.0,
    lambda g: g.astype("float64") / 127.5 - 1.0,
    lambda g: (g.reshape(len(g), 784) - g.reshape(len(g), 784).mean(0)) / (g.reshape(len(g), 784).std(0) + 1e-7),
])
def test_input_space_recovers_student_scaling(transform):
    student = transform(GENUINE)
    space = fit_input_space(student, GENUINE)
    assert space is not None
    assert space.shape == student.shape[1:]
    np.testing.assert_allclose(space.apply(GENUINE), student, atol=1e-4)


@pytest.mark.parametrize("student", [
    GENUINE[::-1].reshape(500, 784),                       # other images, same pixels
    np.sqrt(GENUINE.reshape(500, 784).astype(float)),      # not a per-pixel affine map
    np.zeros((500, 784)),
    GENUINE[:100].reshape(100, 784),                       # a subset
])
def test_input_space_rejects_other_data(student):
    assert fit_input_space(student, GENUINE) is None


def fit_all_at_once(student, genuine):
    """fit_input_space's definition, on all 784 pixels at once (its float64 temporaries are what
    fitting in column blocks avoids): the reference the blocks must match bit for bit."""
    s = student.reshape(len(student), -1).astype(np.float64)
    g = genuine.reshape(len(genuine), -1).astype(np.float64)
    g_mean, s_mean = g.mean(axis=0), s.mean(axis=0)
    g_var = ((g - g_mean) ** 2).mean(axis=0)
    cov = ((g - g_mean) * (s - s_mean)).mean(axis=0)
    varying = g_var > 0
    scale = np.where(varying, cov / np.where(varying, g_var, 1.0), 1.0)
    offset = np.where(varying, s_mean - scale * g_mean, s_mean)
    scale = np.where(varying, scale, 0.0)
    error = float(np.abs(g * scale + offset - s).max())
    return scale, offset, error <= RELATIVE_TOLERANCE * max(1.0, float(np.abs(s).max()))


def apply_all_at_once(space, genuine):
    mapped = genuine.reshape(len(genuine), -1).astype(np.float64) * space.scale + space.offset
    dtype = np.dtype(space.dtype)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.dtype(np.float32) if not np.allclose(mapped, np.rint(mapped)) else dtype
    return mapped.astype(dtype).reshape((len(genuine),) + tuple(space.shape))


def _standardised(x):
    flat = x.reshape(len(x), -1).astype("float32")
    return (flat - flat.mean(0)) / (flat.std(0) + 1e-7)


@pytest.mark.parametrize("transform", [
    lambda x: x / 255.0,
    lambda x: (x / 255.0).astype("float32").reshape(len(x), 784),
    lambda x: x.astype("float16") / 255,
    lambda x: x.reshape(len(x), 784).astype("int64") * 2 - 255,
    lambda x: x.reshape(len(x), 784),
    _standardised,
    lambda x: (x.astype("float32") - x.mean()) / x.std(),
])
def test_input_space_in_pieces_is_the_space_fitted_and_applied_at_once(transform):
    """The scoring process fits and applies spaces in pieces to bound its memory: the test images'
    space and mapped test set must be the very bits of the all-at-once computation."""
    x_test = shared_mnist().x_test
    student = np.asarray(transform(x_test))
    space = fit_input_space(student, x_test)
    scale, offset, explained = fit_all_at_once(student, x_test)
    assert explained and space is not None
    assert space.scale.tobytes() == scale.tobytes() and space.offset.tobytes() == offset.tobytes()
    mapped, reference = space.apply(x_test), apply_all_at_once(space, x_test)
    assert mapped.dtype == reference.dtype and mapped.shape == reference.shape
    assert mapped.tobytes() == reference.tobytes()
    halves = replace(space, dtype="int64", scale=space.scale / 2)     # not integral: float32, as at once
    assert space.apply(x_test[:10]).dtype == student.dtype
    assert halves.apply(x_test).tobytes() == apply_all_at_once(halves, x_test).tobytes()


def model(*layers, units=10):
    return ModelInfo(tuple(layers), units)


def art(m=None, fits=(), predictions=(), accuracy=None, question="q1", **kw):
    return QuestionArtifacts(question, model=m, fits=list(fits), predictions=list(predictions),
                             accuracy=accuracy, **kw)


def fit(question="q1", batch=32, epochs=1, samples=60000, test_rows=0):
    return FitCall(question, batch, epochs, batch_size_how="default", samples=samples, test_rows=test_rows)


BN = Layer("BatchNormalization", features=784)
OUT = Layer("Dense", 10, "softmax", 784)


@pytest.mark.parametrize("layers", [
    (BN, OUT),
    (BN, Layer("Dense", 10, "linear", 784), Layer("Activation", None, "softmax", 10)),
    (BN, Layer("Dense", 10, "linear", 784), Layer("Softmax", None, "softmax", 10)),
    (BN, OUT, Layer("Dropout", None, None, 10)),
])
def test_softmax_output_accepts_every_spelling(layers):
    checks.softmax_output(art(model(*layers)))


def test_softmax_output_rejects_sigmoid_and_wrong_units():
    with pytest.raises(AssertionError, match="softmax"):
        checks.softmax_output(art(model(BN, Layer("Dense", 10, "sigmoid", 784))))
    with pytest.raises(AssertionError, match="10 neurones"):
        checks.softmax_output(art(model(BN, Layer("Dense", 5, "softmax", 784), units=5)))


def test_missing_model_is_explained():
    with pytest.raises(AssertionError, match="aucun modèle"):
        checks.softmax_output(art(None, model_error="aucun modèle Keras n'a été trouvé pour cette question"))


def test_batchnorm_first():
    checks.batchnorm_first(art(model(BN, OUT)))
    with pytest.raises(AssertionError, match="première couche"):
        checks.batchnorm_first(art(model(OUT)))
    with pytest.raises(AssertionError, match="784"):
        checks.batchnorm_first(art(model(Layer("BatchNormalization", features=28), OUT)))


def test_fit_arguments():
    checks.fit_arguments(art(fits=[fit("q2"), fit("q3", 128, 5)], question="q3"), batch_size=128, epochs=5)
    with pytest.raises(AssertionError, match="batchs de taille 128"):
        checks.fit_arguments(art(fits=[fit("q3", 64, 5)], question="q3"))
    with pytest.raises(AssertionError, match="5 époques"):
        checks.fit_arguments(art(fits=[fit("q3", 128, 3)], question="q3"))
    with pytest.raises(AssertionError, match="pas été entraîné"):
        checks.fit_arguments(art(fits=[fit("q2", 128, 5)], question="q3"))


def dense(units, activation="linear"):
    return Layer("Dense", units, activation, 784)


@pytest.mark.parametrize("hidden", [
    *[(dense(128, a),) for a in ("relu", "sigmoid", "tanh", "elu", "selu", "gelu", "leaky_relu", "silu",
                                 "softplus", "mish", "relu6")],
    (dense(64), Layer("Activation", None, "relu", 64)),
    (dense(64), Layer("Activation", None, "tanh", 64)),
    (dense(64), Layer("LeakyReLU")),
    (dense(64), Layer("PReLU")),
    (dense(64), Layer("ELU")),
    (dense(64), Layer("ReLU", activation="relu")),
    (dense(64), Layer("BatchNormalization", features=64), Layer("Activation", None, "softplus", 64)),
    (dense(64), Layer("Dropout"), Layer("LeakyReLU")),
    (dense(256, "linear"), dense(128, "tanh")),          # one linear, one non-linear hidden layer
])
def test_hidden_dense_layer_accepts_any_non_linearity(hidden):
    checks.hidden_dense_layer(art(model(BN, *hidden, OUT)))


@pytest.mark.parametrize("hidden", [
    (),
    (dense(64),),                                           # no activation: still a linear model
    (dense(64, "linear"), Layer("Activation", None, "linear", 64)),
    (dense(64), Layer("Dropout"), Layer("BatchNormalization", features=64)),
    (dense(64), dense(32)),
])
def test_hidden_dense_layer_refuses_linear_stacks(hidden):
    with pytest.raises(AssertionError, match="couche Dense cachée avec une activation non linéaire"):
        checks.hidden_dense_layer(art(model(BN, *hidden, OUT)))


def test_non_linearity_after_the_output_layer_is_not_hidden():
    with pytest.raises(AssertionError, match="couche Dense cachée"):
        checks.hidden_dense_layer(art(model(BN, dense(10), Layer("Softmax", activation="softmax"))))


def test_min_accuracy_and_test_contamination():
    checks.min_accuracy(art(model(BN, OUT), accuracy=0.97), threshold=0.95)
    with pytest.raises(AssertionError, match="0.9000"):
        checks.min_accuracy(art(model(BN, OUT), accuracy=0.90), threshold=0.95)
    with pytest.raises(AssertionError, match="images du jeu de test"):
        checks.min_accuracy(art(model(BN, OUT), fits=[fit(test_rows=10000)], accuracy=0.99), threshold=0.95)


def test_training_and_prediction_checks():
    good = art(fits=[fit()], predictions=[Prediction("q1", "predict", 10000)], predicted_test_set=True)
    checks.trained_on_training_set(good)
    checks.predicted_test_set(good)
    with pytest.raises(AssertionError, match="60000"):
        checks.trained_on_training_set(art(fits=[fit(samples=5000)]))
    with pytest.raises(AssertionError, match="model.predict"):
        checks.predicted_test_set(art(predictions=[Prediction("q1", "evaluate", 10000)]))


@pytest.mark.parametrize("after", [Layer("BatchNormalization", features=10), Layer("Dense", 10, "linear", 10),
                                   Layer("Rescaling", features=10)])
def test_softmax_output_reads_the_models_output_not_a_layer_before_it(after):
    checks.softmax_output(art(model(BN, OUT, Layer("Flatten"))))
    with pytest.raises(AssertionError, match=f"sortie trouvée : '(couche {after.class_name}|linear)'"):
        checks.softmax_output(art(model(BN, OUT, after)))


def test_weights_changed_without_recorded_training_fail_the_accuracy_check():
    with pytest.raises(AssertionError, match="sans entraînement enregistré.*examinée par l'enseignant"):
        checks.min_accuracy(art(model(BN, OUT), fits=[fit()], accuracy=0.99,
                                unaccounted=[messages.UNACCOUNTED_CHANGE]), threshold=0.95)
    with pytest.raises(AssertionError, match="1900 mises à jour .* n'en explique que 1875"):
        checks.min_accuracy(art(model(BN, OUT), fits=[fit()], accuracy=0.99,
                                unaccounted=[messages.UNRECORDED_STEPS.format(saved=1900, recorded=1875)]), threshold=0.95)


def test_training_outside_fit_counts_as_training_with_its_batches_and_epochs():
    session = {"kind": "train", "via": "custom_loop", "question": "q3", "model": 1,
               "x": {"kind": "batches", "n": 300000, "distinct": 60000, "batch": 128}}
    call = _fit_call(session, test_rows=0)
    assert (call.via, call.samples, call.batch_size, call.epochs) == ("custom_loop", 60000, 128, 5)
    checks.fit_arguments(art(fits=[call], question="q3"), batch_size=128, epochs=5)
    checks.trained_on_training_set(art(fits=[replace(call, question="q1")]))
    partial = _fit_call({**session, "x": {**session["x"], "n": 250001}}, test_rows=0)
    assert partial.epochs == -1     # not a whole number of passes: unknown, never 5


def test_a_copy_brings_the_sources_history_up_to_the_copy():
    calls = [{"kind": "fit", "model": 2, "n": "twin before"}, {"kind": "fit", "model": 1, "n": "own"},
             {"kind": "copy", "model": 1, "from": 2}, {"kind": "fit", "model": 2, "n": "twin after"},
             {"kind": "copy", "model": 3, "from": 1}]
    assert [c.get("n", c["kind"]) for c in lineage_calls(calls, 1)] == ["twin before", "own", "copy"]
    assert [c.get("n", c["kind"]) for c in lineage_calls(calls, 3)] == ["twin before", "own", "copy", "copy"]
    assert lineage_calls(calls, 4) == []
