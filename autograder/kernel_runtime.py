"""Code that runs inside the student's kernel, injected by the hidden preamble.

It is self-contained (standard library, NumPy, Keras) because it is shipped into the
kernel as source, never imported from the grader's package.  It computes no score:
it only serves MNIST offline, seeds, records ``fit``/``predict``/``evaluate`` calls and
exports each question's artifacts for the clean scoring process.
"""

import hashlib
import inspect
import json
import linecache
import os
import random
import sys
import traceback
import weakref

import numpy as np

TEST_ROWS = 10000
HEAD_ROWS = 2000
IMAGE_FEATURES = 784      # 28 x 28 pixels, however the rows are shaped
PROJECTION_DIMS = 64      # near-duplicate fingerprints: a fixed random projection of each row
PROJECTION_SEED = 784_064

_state = {
    "question": None,
    "calls": [],          # every recorded call, in order
    "models": weakref.WeakValueDictionary(),  # uid -> model
    "last_inputs": {},    # (uid, kind) -> array of the last test-sized input
    "fit_heads": {},      # uid -> first rows of the last training input
    "projections": {},    # sha256 of a training input -> its rows projected (near-duplicate search)
    "depth": 0,           # > 0 while inside a recorded call (Keras calls itself)
    "next_uid": 1,
    "config": {},
}


def _uid(model):
    uid = getattr(model, "_autograder_uid", None)
    if uid is None:
        uid = _state["next_uid"]
        _state["next_uid"] += 1
        try:
            object.__setattr__(model, "_autograder_uid", uid)
        except Exception:
            pass
        _state["models"][uid] = model
    return uid


def _as_array(x):
    """A NumPy view of array-like inputs; None for datasets, generators, dicts."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, (int, float, list, np.ndarray)) for v in x[:1]):
        try:
            return np.asarray(x)
        except Exception:
            return None
    if hasattr(x, "numpy") and hasattr(x, "shape"):
        try:
            return np.asarray(x.numpy())
        except Exception:
            return None
    return None


def row_hashes(arr):
    rows = np.ascontiguousarray(arr).reshape(len(arr), -1)
    return [hashlib.blake2b(r.tobytes(), digest_size=8).hexdigest() for r in rows]


_projection = []


def project_rows(arr):
    """Each 784-feature row through one fixed random projection, or None for other shapes.

    Distances survive a random projection (Johnson-Lindenstrauss), so the scoring process
    can find training rows that are near-duplicates of test images without the full rows.
    """
    rows = np.asarray(arr).reshape(len(arr), -1)
    if rows.shape[1] != IMAGE_FEATURES or not np.issubdtype(rows.dtype, np.number):
        return None
    if not _projection:
        rng = np.random.default_rng(PROJECTION_SEED)
        _projection.append((rng.standard_normal((IMAGE_FEATURES, PROJECTION_DIMS)) / np.sqrt(PROJECTION_DIMS))
                           .astype(np.float32))
    out = np.empty((len(rows), PROJECTION_DIMS), dtype=np.float32)
    for start in range(0, len(rows), 10000):   # bounded temporary memory
        out[start:start + 10000] = rows[start:start + 10000].astype(np.float32) @ _projection[0]
    return out


def _fingerprint_training(entry, rows):
    """What the scoring process needs to tell which training rows are test images."""
    entry["row_hashes"] = row_hashes(rows)
    key = entry["x"].get("sha256")
    if key and key not in _state["projections"]:
        projected = project_rows(rows)
        if projected is not None:
            _state["projections"][key] = projected
    if key in _state["projections"]:
        entry["projection"] = key
    _state["fit_heads"][entry["model"]] = np.array(rows[:HEAD_ROWS], copy=True)


def _describe_input(x):
    arr = _as_array(x)
    if arr is None:
        return {"kind": type(x).__name__, "n": None}, None
    info = {
        "kind": "array",
        "n": int(arr.shape[0]) if arr.ndim else None,
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        "sha256": hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest(),
    }
    return info, arr


def _how(bound, name):
    """'keyword', 'positional' or 'default': how an argument reached the call."""
    if name in bound.kwargs_given:
        return "keyword"
    if name in bound.positional_given:
        return "positional"
    return "default"


class _Bound:
    def __init__(self, fn, self_, args, kwargs):
        sig = inspect.signature(fn)
        ba = sig.bind(self_, *args, **kwargs)
        params = list(sig.parameters)
        self.positional_given = set(params[1:1 + len(args)])
        self.kwargs_given = set(kwargs)
        ba.apply_defaults()
        self.arguments = dict(ba.arguments)
        extra = self.arguments.pop("kwargs", None)
        if isinstance(extra, dict):
            self.arguments.update(extra)


def _record(kind, model, fn, args, kwargs):
    try:
        bound = _Bound(fn, model, args, kwargs)
    except TypeError:
        return None
    a = bound.arguments
    x_info, x_arr = _describe_input(a.get("x"))
    entry = {
        "kind": kind,
        **_origin(),
        "model": _uid(model),
        "x": x_info,
    }
    if kind in ("fit", "evaluate", "predict"):
        entry["batch_size"] = a.get("batch_size")
        entry["batch_size_how"] = _how(bound, "batch_size")
    if kind == "fit":
        entry["epochs"] = a.get("epochs")
        entry["epochs_how"] = _how(bound, "epochs")
        entry["initial_epoch"] = a.get("initial_epoch", 0)
        entry["validation_split"] = a.get("validation_split", 0.0)
        entry["has_validation_data"] = a.get("validation_data") is not None
        entry["steps_per_epoch"] = a.get("steps_per_epoch")
        if x_arr is not None and x_arr.ndim:
            _fingerprint_training(entry, x_arr)
    elif x_arr is not None and x_arr.ndim and x_arr.shape[0] == TEST_ROWS:
        _state["last_inputs"][(entry["model"], kind)] = x_arr
    return entry


def _wrap(kind, original):
    def recorded(self, *args, **kwargs):
        if _state["depth"]:
            return original(self, *args, **kwargs)
        try:
            entry = _record(kind, self, original, args, kwargs)
        except Exception as exc:  # recording must never break student code
            entry = {"kind": kind, "question": _state["question"], "record_error": repr(exc)}
        _state["depth"] += 1
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            if entry is not None:
                entry["raised"] = type(exc).__name__
                _state["calls"].append(entry)
            raise
        finally:
            _state["depth"] -= 1
        if entry is not None:
            if kind == "fit":
                history = getattr(result, "epoch", None)
                entry["epochs_run"] = len(history) if history is not None else None
            _state["calls"].append(entry)
        return result

    recorded.__wrapped__ = original
    recorded.__name__ = getattr(original, "__name__", kind)
    recorded.__doc__ = getattr(original, "__doc__", None)
    return recorded


def _wrap_call(original):
    """model(x) on concrete data counts as a prediction; symbolic calls are Keras' own."""
    def called(self, *args, **kwargs):
        if _state["depth"] or not args or _as_array_if_concrete(args[0]) is None:
            return original(self, *args, **kwargs)
        x_info, x_arr = _describe_input(args[0])
        entry = {"kind": "predict", "via": "__call__", **_origin(),
                 "model": _uid(self), "x": x_info}
        if x_arr is not None and x_arr.ndim and x_arr.shape[0] == TEST_ROWS:
            _state["last_inputs"][(entry["model"], "predict")] = x_arr
        _state["depth"] += 1
        try:
            return original(self, *args, **kwargs)
        finally:
            _state["depth"] -= 1
            _state["calls"].append(entry)

    called.__wrapped__ = original
    return called


def _as_array_if_concrete(x):
    if isinstance(x, np.ndarray):
        return x
    if type(x).__name__ == "EagerTensor":
        return x
    return None


def _serve_mnist(npz_path):
    import keras.src.datasets.mnist as keras_mnist

    def get_file(*args, **kwargs):
        return npz_path

    keras_mnist.get_file = get_file


def _seed(seed, threads):
    random.seed(seed)
    np.random.seed(seed)
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:
        pass
    import keras
    keras.utils.set_random_seed(seed)


def install(config):
    """Called once by the hidden preamble, before any student code."""
    _state["config"] = dict(config)
    os.makedirs(config["capture_dir"], exist_ok=True)
    import keras
    _serve_mnist(config["mnist"])
    _seed(int(config["seed"]), int(config["threads"]))
    model_cls = keras.Model
    for kind in ("fit", "evaluate", "predict"):
        setattr(model_cls, kind, _wrap(kind, getattr(model_cls, kind)))
    model_cls.predict_on_batch = _wrap("predict", model_cls.predict_on_batch)
    model_cls.__call__ = _wrap_call(model_cls.__call__)


def begin(question, exercise=True, given=()):
    """Before a question's cells: ``exercise`` for its own cell, False for cells the student added."""
    if _state["question"] != question:
        _state["model_before"] = id(_user_namespace().get("model"))
    _state["question"] = question
    _state["exercise"] = exercise
    _state["given"] = frozenset(given)


def _notebook_line():
    """The notebook line that made the current call (IPython keeps each cell's source in linecache)."""
    user_globals = _user_namespace()
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals is not user_globals:
        frame = frame.f_back
    if frame is None:
        return None
    return linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()


def _origin():
    """Where a call comes from: its question, whether from the exercise cell, whether from a given line."""
    exercise = bool(_state.get("exercise")) and _state["question"] is not None
    return {"question": _state["question"], "exercise": exercise,
            "given": exercise and _notebook_line() in _state.get("given", ())}


def _user_namespace():
    try:
        return get_ipython().user_ns  # noqa: F821 (defined inside IPython)
    except NameError:
        return sys.modules["__main__"].__dict__


def _choose_model(question):
    """The model the question's own cell works on: the one its given code calls, else the one the cell
    itself calls last; cells a student added count only through it.  Failing that (the cell made no
    call), the last model trained in the question, else the last one used, else `model`."""
    models = _state["models"]
    calls = [c for c in _state["calls"] if c.get("question") == question and c.get("model") in models]
    exercise = [c for c in calls if c.get("exercise")]
    for pool, how in (([c for c in exercise if c.get("given")], "given"), (exercise, "exercise")):
        if pool:
            return models[pool[-1]["model"]], how
    for kinds in (("fit",), ("evaluate", "predict")):
        for call in reversed(calls):
            if call["kind"] in kinds:
                return models[call["model"]], "trained" if kinds == ("fit",) else "used"
    # `model` counts only if the question (re)assigned it: a model given before it proves nothing.
    candidate = _user_namespace().get("model")
    import keras
    if isinstance(candidate, keras.Model) and id(candidate) != _state.get("model_before"):
        return candidate, "variable"
    return None, None


def _plain(value):
    """JSON for what students pass as arguments: NumPy scalars (batch_size=np.int64(128)) and the rest."""
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


def capture(question):
    """Export the question's artifacts into the grader's capture directory."""
    out = os.path.join(_state["config"]["capture_dir"], question)
    os.makedirs(out, exist_ok=True)
    meta = {"question": question, "errors": []}
    try:
        model, how = _choose_model(question)
        meta["model_found_by"] = how
        uid = _uid(model) if model is not None else None
        meta["model_uid"] = uid
        if model is not None:
            try:
                model.save(os.path.join(out, "model.keras"))
                meta["model_saved"] = True
            except Exception as exc:
                meta["model_saved"] = False
                meta["errors"].append("model.save: " + repr(exc))
            arrays = {}
            for kind in ("evaluate", "predict"):
                arr = _state["last_inputs"].get((uid, kind))
                if arr is not None:
                    arrays[kind + "_x"] = np.asarray(arr)
            if uid in _state["fit_heads"]:
                arrays["fit_head_x"] = _state["fit_heads"][uid]
            for call in _state["calls"]:
                if call.get("model") == uid and call.get("projection"):
                    arrays["projection_" + call["projection"]] = _state["projections"][call["projection"]]
            if arrays:
                np.savez_compressed(os.path.join(out, "inputs.npz"), **arrays)
        calls = [c for c in _state["calls"] if c.get("question") == question or
                 (uid is not None and c.get("model") == uid)]
        with open(os.path.join(out, "calls.json"), "w") as fh:
            json.dump({"meta": meta, "calls": calls}, fh, default=_plain)
    except Exception:
        meta["errors"].append(traceback.format_exc(limit=3))
        with open(os.path.join(out, "calls.json"), "w") as fh:
            json.dump({"meta": meta, "calls": []}, fh)
    finally:
        _state["question"] = None
