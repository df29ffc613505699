"""A question at a time: ``begin`` before its cells, ``capture`` after them, which chooses the model the
question is graded on and exports it, its inputs and its calls in the capture format (format.py) for the
clean scoring process."""

import json
import os
import traceback

import numpy as np

from .format import (CALLS, CALLS_FILE, ERRORS, EVALUATE_X, FIT_HEAD_X, GRAPH_EXPORT, GRAPH_EXPORTED, INPUTS_FILE,
                     META, MODEL_FILE, MODEL_FOUND_BY, MODEL_SAVED, MODEL_UID, NOTEBOOK_CODE, PREDICT_X, PROJECTION,
                     PROJECTION_PREFIX, QUESTION, SPECTRUM_PREFIX)
from .lineage import _lineage, _observe
from .state import KERAS_MODULES, _state, _uid, _user_namespace


def begin(question, exercise=True, given=()):
    """Before a question's cells: ``exercise`` for its own cell, False for cells the student added."""
    if _state["question"] != question:
        _state["model_before"] = id(_user_namespace().get("model"))
    _state["question"] = question
    _state["exercise"] = exercise
    _state["given"] = frozenset(given)


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
    for kinds in (("fit", "train"), ("evaluate", "predict")):
        for call in reversed(calls):
            if call["kind"] in kinds:
                return models[call["model"]], "trained" if "fit" in kinds else "used"
    # `model` counts only if the question (re)assigned it: a model given before it proves nothing.
    candidate = _user_namespace().get("model")
    import keras
    if isinstance(candidate, keras.Model) and id(candidate) != _state.get("model_before"):
        return candidate, "variable"
    return None, None


def _notebook_code(model):
    """What in the model is Python written in the notebook (a subclass's call, a custom or Lambda layer, a
    function as activation): the scoring process, which never runs student code, then grades the model from
    its traced computation, exported as a TensorFlow SavedModel."""
    found = []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        cls = type(layer)
        if not cls.__module__.startswith(KERAS_MODULES):
            found.append("class " + cls.__name__)
        elif cls.__name__ == "Lambda":
            found.append("Lambda")
        activation = getattr(layer, "activation", None)
        if callable(activation) and not getattr(activation, "__module__", "").startswith(KERAS_MODULES):
            found.append("activation " + getattr(activation, "__name__", "?"))
    return found


def _plain(value):
    """JSON for what students pass as arguments: NumPy scalars (batch_size=np.int64(128)) and the rest."""
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


def capture(question):
    """Export the question's artifacts into the grader's capture directory (in the format of format.py)."""
    out = os.path.join(_state["config"]["capture_dir"], question)
    os.makedirs(out, exist_ok=True)
    meta = {QUESTION: question, ERRORS: []}
    try:
        model, how = _choose_model(question)
        meta[MODEL_FOUND_BY] = how
        uid = _uid(model) if model is not None else None
        meta[MODEL_UID] = uid
        for session in _state["sessions"].values():
            session.finish()
        lineage = set()
        if model is not None:
            _observe(model)
            lineage = _lineage(uid)
            _save_model(model, out, meta)
            _save_inputs(uid, lineage, out)
        calls = [c for c in _state["calls"] if c.get("question") == question or c.get("model") in lineage]
        with open(os.path.join(out, CALLS_FILE), "w") as fh:
            json.dump({META: meta, CALLS: calls}, fh, default=_plain)
    except Exception:
        meta[ERRORS].append(traceback.format_exc(limit=3))
        with open(os.path.join(out, CALLS_FILE), "w") as fh:
            json.dump({META: meta, CALLS: []}, fh)
    finally:
        _state["question"] = None


def _save_model(model, out, meta):
    """The model as Keras saves it, and its traced computation when it runs notebook code."""
    _state["depth"] += 1     # saving is the grader's, not a call to record
    try:
        model.save(os.path.join(out, MODEL_FILE))
        meta[MODEL_SAVED] = True
    except Exception as exc:
        meta[MODEL_SAVED] = False
        meta[ERRORS].append("model.save: " + repr(exc))
    try:
        meta[NOTEBOOK_CODE] = _notebook_code(model)
        if meta[NOTEBOOK_CODE]:
            model.export(os.path.join(out, GRAPH_EXPORT), format="tf_saved_model", verbose=False)
            meta[GRAPH_EXPORTED] = True
    except Exception as exc:
        meta[ERRORS].append("model.export: " + repr(exc))
    finally:
        _state["depth"] -= 1


def _save_inputs(uid, lineage, out):
    """The model's last test inputs, the head of its training input, and the fingerprints of the training
    of every model in its lineage."""
    arrays = {}
    for kind, name in (("evaluate", EVALUATE_X), ("predict", PREDICT_X)):
        arr = _state["last_inputs"].get((uid, kind))
        if arr is not None:
            arrays[name] = np.asarray(arr)
    if uid in _state["fit_heads"]:
        arrays[FIT_HEAD_X] = _state["fit_heads"][uid]
    for call in _state["calls"]:
        if call.get("model") in lineage and call.get(PROJECTION):
            arrays[PROJECTION_PREFIX + call[PROJECTION]] = _state["projections"][call[PROJECTION]]
            arrays[SPECTRUM_PREFIX + call[PROJECTION]] = _state["spectra"][call[PROJECTION]]
    if arrays:
        # Uncompressed: zlib took over a second per question for a file that lives minutes.
        np.savez(os.path.join(out, INPUTS_FILE), **arrays)
