"""Artifacts: what the scoring process knows about each question, as plain dataclasses.

Built in the clean scoring process from the capture directory: the saved Keras model
is loaded and described here, and its accuracy measured here on the genuine test set.
Nothing the notebook printed or computed about itself is trusted.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core import messages
from ..core.config import Contamination
from ..core.mnist_data import Mnist
from ..kernel.runtime.fingerprints import row_hashes
from ..kernel.runtime.format import (CALLS, CALLS_FILE, EVALUATE_X, FIT_HEAD_X, GRAPH_EXPORT, GRAPH_EXPORTED,
                                     INPUTS_FILE, META, MODEL_FILE, MODEL_SAVED, MODEL_UID, PREDICT_X)
from .evaluation import Generalization, digest, evaluate, kept
from .graph_model import UnsafeModel, load_graph_model
from .inputs import InputSpace, exact_test_rows, fit_input_space, trained_rows

KERAS_DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class Layer:
    class_name: str
    units: int | None = None
    activation: str | None = None
    features: int | None = None      # size of the last input axis


@dataclass(frozen=True)
class ModelInfo:
    layers: tuple[Layer, ...]        # flattened, InputLayer excluded
    output_units: int | None
    params: int | None = None


@dataclass(frozen=True)
class FitCall:
    question: str | None
    batch_size: int | None           # effective value (Keras' default when omitted); None: unknown
    epochs: int                      # epochs asked for, initial_epoch accounted for
    batch_size_how: str
    samples: int | None
    test_rows: int = 0               # training rows that are test images
    raised: str | None = None
    unreadable: str | None = None    # French: the data Keras iterated, when it could not be examined
    via: str = "fit"                 # "fit", or training outside it: "train_on_batch", "custom_loop"
    history: dict = field(default_factory=dict)   # per epoch, as the fit reported it (History.history)


@dataclass(frozen=True)
class Prediction:
    question: str | None
    kind: str                        # "predict" or "evaluate"
    samples: int | None


@dataclass
class QuestionArtifacts:
    question: str
    failure: str | None = None       # French: why the question could not run
    model: ModelInfo | None = None
    model_error: str | None = None
    model_refused: bool = False      # a model was there, but grading could not load or run it safely
    fits: list[FitCall] = field(default_factory=list)          # on this model, all questions
    predictions: list[Prediction] = field(default_factory=list)
    test_inputs: str = "missing"     # "genuine", "not_genuine" or "missing"
    predicted_test_set: bool = False
    accuracy: float | None = None
    accuracy_note: str | None = None
    unaccounted: list[str] = field(default_factory=list)    # French: weight changes no recorded training explains
    generalization: Generalization | None = None
    predicted: np.ndarray | None = None     # each genuine test image's predicted digit

    @property
    def question_fits(self) -> list[FitCall]:
        return [f for f in self.fits if f.question == self.question and f.raised is None]


def describe_model(model) -> ModelInfo:
    """Flatten nested models into the list of layers a student would read top to bottom."""
    import keras

    layers: list[Layer] = []

    def walk(m):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                walk(layer)
                continue
            if isinstance(layer, keras.layers.InputLayer):
                continue
            cfg = layer.get_config()
            activation = cfg.get("activation")
            if isinstance(activation, dict):
                activation = activation.get("config", {}).get("name") or activation.get("class_name")
            if layer.__class__.__name__ == "Softmax":
                activation = "softmax"
            if layer.__class__.__name__ == "ReLU":
                activation = "relu"
            try:
                features = int(layer.input.shape[-1]) if layer.input.shape[-1] is not None else None
            except Exception:
                features = None
            layers.append(Layer(layer.__class__.__name__, cfg.get("units"),
                                activation if isinstance(activation, str) else None, features))

    walk(model)
    try:
        out = model.output_shape
        output_units = int(out[-1]) if out and out[-1] is not None else None
    except Exception:
        output_units = None
    try:
        params = int(model.count_params())
    except Exception:  # noqa: BLE001 - a model Keras cannot count is described without it
        params = None
    return ModelInfo(tuple(layers), output_units, params)


# How a saved config refers to Python code written in the notebook, which safe_mode rightly refuses to run.
NOTEBOOK_CODE_MARKERS = ('"__lambda__"', '"class_name": "Lambda"', '"module": "builtins", "class_name": "function"',
                         '"activation": {"value": [')   # a lambda activation, saved as bytecode


def load_model(path: Path):
    """The student's saved model, loaded without running any code of theirs (safe_mode)."""
    import keras

    # An activation passed as a function (tf.nn.swish) is saved by its name alone: Keras' own
    # activations are safe to resolve by name.
    known = {name: fn for name, fn in vars(keras.activations).items() if callable(fn) and not name.startswith("_")}
    return keras.saving.load_model(path, compile=False, safe_mode=True, custom_objects=known)


def _load_error(path: Path, exc: Exception) -> str:
    try:
        with zipfile.ZipFile(path) as saved:
            config = saved.read("config.json").decode("utf-8", errors="replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        config = ""
    if any(marker in config for marker in NOTEBOOK_CODE_MARKERS):
        return messages.NOTEBOOK_CODE_IN_MODEL
    return messages.MODEL_NOT_RELOADED.format(error=type(exc).__name__)


def _unreadable(x: dict) -> str | None:
    """French: what a fit's data is and what hid it (``why`` as the kernel runtime records it)."""
    why = x.get("why")
    if not why:
        return None
    code, _, method = why.partition(":")
    what = messages.DATA_KINDS.get(x.get("kind"), f"un objet {x.get('kind')}")
    return f"{what} {messages.DATA_HIDDEN_BY[code].format(method)}" if code in messages.DATA_HIDDEN_BY else what


def _fit_call(raw: dict, test_rows: int) -> FitCall:
    if raw.get("kind") == "train":
        return _training_outside_fit(raw, test_rows)
    batch = raw.get("batch_size")
    epochs = raw.get("epochs") if raw.get("epochs") is not None else 1
    initial = raw.get("initial_epoch") or 0
    return FitCall(
        question=raw.get("question"),
        batch_size=int(batch) if isinstance(batch, (int, np.integer)) else (
            None if raw.get("batch_size_how") == "data" else KERAS_DEFAULT_BATCH_SIZE if batch is None else -1),
        epochs=int(epochs) - int(initial) if isinstance(epochs, (int, np.integer)) else -1,
        batch_size_how=raw.get("batch_size_how", "default"),
        samples=(raw.get("x") or {}).get("n"),
        test_rows=test_rows,
        raised=raw.get("raised"),
        unreadable=_unreadable(raw.get("x") or {}),
        history=_history(raw.get("history")),
    )


def _history(raw) -> dict[str, list[float]]:
    """The recorded per-epoch figures, numbers only (the recording came from the student's kernel)."""
    if not isinstance(raw, dict):
        return {}
    return {str(k): [float(v) for v in values] for k, values in raw.items()
            if isinstance(values, list) and all(isinstance(v, (int, float)) for v in values)}


def _training_outside_fit(raw: dict, test_rows: int) -> FitCall:
    """A session of train_on_batch calls or of a custom loop: its batch size is its first batch's, its epochs
    the times it saw each of its distinct rows (unknown unless whole)."""
    x = raw.get("x") or {}
    distinct, seen = x.get("distinct") or 0, x.get("n") or 0
    batch = x.get("batch")
    return FitCall(question=raw.get("question"), batch_size=int(batch) if batch else None,
                   epochs=seen // distinct if distinct and seen % distinct == 0 else -1,
                   batch_size_how=raw.get("via", "custom_loop"), samples=distinct or None, test_rows=test_rows,
                   unreadable=_unreadable(x), via=raw.get("via", "custom_loop"))


def lineage_calls(calls: list[dict], uid) -> list[dict]:
    """The calls that shaped the weights of model ``uid``, in order: its own, and those of each model it
    copied weights from, up to the copy (the kernel records a "copy" event with the source's uid)."""
    picked, todo, done = set(), [(uid, len(calls))], set()
    while todo:
        model, end = todo.pop()
        if model is None or (model, end) in done:
            continue
        done.add((model, end))
        for i, call in enumerate(calls[:end]):
            if call.get("model") == model:
                picked.add(i)
                if call.get("kind") == "copy":
                    todo.append((call.get("from"), i))
    return [calls[i] for i in sorted(picked)]


def _optimizer_steps(path: Path) -> int | None:
    """The saved optimizer's update count (Keras stores it first among the optimizer's variables), read
    from the file without loading the model."""
    import h5py

    try:
        with zipfile.ZipFile(path) as saved, saved.open("model.weights.h5") as weights:
            with h5py.File(io.BytesIO(weights.read()), "r") as h5:
                value = h5["optimizer/vars/0"][()] if "optimizer/vars/0" in h5 else None
        return int(value) if value is not None and np.ndim(value) == 0 else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _recorded_steps(calls: list[dict]) -> int | None:
    """The updates the model's own optimizer made in its recorded training; None if a fit's is unknown."""
    total = 0
    for call in calls:
        if call.get("kind") == "train":
            total += int(call.get("model_optimizer_steps") or 0)
        elif call.get("kind") == "fit":
            steps = _fit_steps(call)
            if steps is None:
                return None
            total += steps
    return total


def _fit_steps(call: dict) -> int | None:
    x, epochs = call.get("x") or {}, call.get("epochs_run")
    if isinstance(call.get("steps_per_epoch"), int):
        per_epoch = call["steps_per_epoch"]
    elif x.get("n") is not None and x.get("kind") == "array":
        batch = call.get("batch_size") if isinstance(call.get("batch_size"), int) else KERAS_DEFAULT_BATCH_SIZE
        rows = trained_rows(int(x["n"]), call.get("validation_split"), bool(call.get("has_validation_data")))
        per_epoch = -(-rows // batch) if batch > 0 else None
    else:
        return None
    return per_epoch * epochs if per_epoch is not None and isinstance(epochs, int) else None


def _read_capture(qdir: Path) -> tuple[dict, list, dict[str, np.ndarray]]:
    """The question's call log and the arrays the kernel exported with it (unreadable arrays: none)."""
    data = json.loads((qdir / CALLS_FILE).read_text())
    inputs = {}
    if (qdir / INPUTS_FILE).exists():
        try:
            with np.load(qdir / INPUTS_FILE, allow_pickle=False) as npz:
                inputs = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile):
            inputs = {}
    return data.get(META, {}), data.get(CALLS, []), inputs


def _test_hashes(mnist: Mnist, inputs: dict[str, np.ndarray]) -> set[str]:
    """Test images, byte for byte, in every form the student may have trained on them."""
    hashes = set(kept.get(mnist, ("test hashes",), lambda: row_hashes(mnist.x_test)))
    for key in (EVALUATE_X, PREDICT_X):
        if key in inputs and len(inputs[key]) == len(mnist.x_test):
            hashes.update(kept.get(mnist, ("row hashes", digest(inputs[key])), lambda: row_hashes(inputs[key])))
    return hashes


def _input_space(art: QuestionArtifacts, inputs: dict[str, np.ndarray], mnist: Mnist) -> InputSpace | None:
    """The student's input space, from their test inputs (noting whether those are genuine), else
    from the head of their training input."""
    space = None
    for key in (EVALUATE_X, PREDICT_X):
        if key in inputs:
            found = kept.get(mnist, ("space", "test", digest(inputs[key])),
                              lambda: fit_input_space(inputs[key], mnist.x_test))
            if found is not None:
                space = space or found
                if key == PREDICT_X:
                    art.predicted_test_set = True
                art.test_inputs = "genuine"
            elif art.test_inputs != "genuine":
                art.test_inputs = "not_genuine"
    if space is None and FIT_HEAD_X in inputs:
        head = inputs[FIT_HEAD_X]
        space = fit_input_space(head, mnist.x_train[: len(head)])
    return space


def _test_row_counter(inputs, space, mnist: Mnist, settings: Contamination | None):
    """Counts a fit's training rows that are test images: byte for byte, and, when grading
    (``settings``), near-duplicates too.  The public check counts exact copies only."""
    test_hashes = _test_hashes(mnist, inputs)
    if settings is None:
        return lambda call: int(exact_test_rows(call, test_hashes).sum())
    from .contamination import contaminated_row_count   # lazy: verifier.py bundles this module, not that one
    return lambda call: contaminated_row_count(call, inputs, space, mnist, settings=settings, test_hashes=test_hashes)


def load_question(capture_dir: Path, question: str, mnist: Mnist, *, failure: str | None = None,
                  measure_accuracy: bool = True, contamination: Contamination | None = None,
                  count_test_rows: bool = True) -> QuestionArtifacts:
    """What the scoring process knows of a question; ``measure_accuracy`` False for the public check,
    which has no hidden check to feed; ``count_test_rows`` False leaves each fit's ``test_rows`` at 0, for a
    caller that reads only the model's measurements (the search of the training data is most of the cost)."""
    art = QuestionArtifacts(question, failure=failure)
    qdir = Path(capture_dir) / question
    if failure is not None:
        return art
    if not (qdir / CALLS_FILE).exists():
        art.failure = messages.QUESTION_NOT_RUN
        return art
    meta, calls, inputs = _read_capture(qdir)
    uid = meta.get(MODEL_UID)
    space = _input_space(art, inputs, mnist)
    count = _test_row_counter(inputs, space, mnist, (contamination or Contamination()) if measure_accuracy else None) \
        if count_test_rows else (lambda call: 0)
    mine = lineage_calls(calls, uid) if uid is not None else []
    art.fits = [_fit_call(c, count(c)) for c in mine if c.get("kind") in ("fit", "train")]
    if any(c.get("kind") == "unaccounted" for c in mine):
        art.unaccounted.append(messages.UNACCOUNTED_CHANGE)
    art.predictions = [Prediction(c.get("question"), c["kind"], (c.get("x") or {}).get("n"))
                       for c in mine if c.get("kind") in ("predict", "evaluate") and not c.get("raised")]
    if not meta.get(MODEL_SAVED):
        art.model_error = messages.NO_MODEL if uid is None else messages.MODEL_NOT_SAVED
        return art
    try:
        model = load_model(qdir / MODEL_FILE)
        art.model = describe_model(model)
    except Exception as exc:  # noqa: BLE001 - any loading failure is the student's model, not ours
        if not meta.get(GRAPH_EXPORTED):
            art.model_error, art.model_refused = _load_error(qdir / MODEL_FILE, exc), True
            return art
        model = _graph_model(art, qdir / GRAPH_EXPORT)
        if model is None:
            return art
    saved, recorded = _optimizer_steps(qdir / MODEL_FILE), _recorded_steps([c for c in calls if c.get("model") == uid])
    if saved is not None and recorded is not None and saved > recorded:
        art.unaccounted.append(messages.UNRECORDED_STEPS.format(saved=saved, recorded=recorded))
    if measure_accuracy:
        _measure_accuracy(art, model, space, mnist)
    return art


def _graph_model(art: QuestionArtifacts, path: Path):
    """The model from its traced computation (its Python is the notebook's): structure and a predict."""
    try:
        (layers, units), model = load_graph_model(path)
    except UnsafeModel as exc:
        art.model_error, art.model_refused = str(exc), True
        return None
    except Exception as exc:  # noqa: BLE001 - a graph that does not load is the student's model, not ours
        art.model_error, art.model_refused = messages.MODEL_NOT_RELOADED.format(error=type(exc).__name__), True
        return None
    art.model = ModelInfo(tuple(Layer(g.class_name, g.units, g.activation, g.features) for g in layers), units)
    return model


def _measure_accuracy(art: QuestionArtifacts, model, space: InputSpace | None, mnist: Mnist) -> None:
    if space is None:
        art.accuracy_note = messages.NO_TEST_SET
        return
    try:
        art.accuracy, art.generalization, art.predicted = evaluate(model, space, mnist)
    except Exception as exc:  # noqa: BLE001
        art.accuracy_note = messages.MODEL_NOT_EVALUATED.format(error=type(exc).__name__)
