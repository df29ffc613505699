"""What the runtime's modules share: its state, and the small helpers they all use.

The runtime runs inside the student's kernel, where recording must never break student code.
"""

import inspect
import linecache
import sys
import weakref

import numpy as np

KERAS_MODULES = ("keras", "tensorflow", "tf_keras")     # where Keras' own classes and functions live

_state = {
    "question": None,
    "calls": [],          # every recorded call, in order
    "models": weakref.WeakValueDictionary(),  # uid -> model
    "last_inputs": {},    # (uid, kind) -> array of the last test-sized input
    "fit_heads": {},      # uid -> first rows of the last training input
    "projections": {},    # sha256 of a training input -> its rows projected (near-duplicate search)
    "spectra": {},        # ... and their spectra projected (near-duplicates moved, flipped, turned a little)
    "row_hashes": {},     # sha256 of a training input -> its row hashes (the last KEPT_ROW_HASHES)
    "depth": 0,           # > 0 while inside a recorded call (Keras calls itself)
    "next_uid": 1,
    "config": {},
    "explicit_steps": set(),   # uids of models whose compile() was given steps_per_execution
    # Weight lineage: every change of a model's weights is accounted for (lineage.py).
    "accounted": {},      # uid -> digest of the weights last accounted for
    "owners": {},         # digest of accounted weights -> uid of the first model that had them
    "trained_since": {},  # uid -> recorded training steps and batches since its weights were last accounted for
    "var_init": {},       # id(variable) -> (weakref to it, digest of its value when created)
    "sessions": {},       # (uid, question, via) -> _Session: training outside fit
    "pending": {},        # uid -> the last batch an eager forward pass outside training mode saw
    "train_forward": {},  # uid -> batches of training-mode forward passes not yet known to have trained it
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
    """A NumPy view of array-like inputs; None for datasets, generators, dicts.

    A list or tuple of arrays is not one array: Keras reads it as several inputs (or, for
    ``fit(x=(X, y))``, as a mistake), so it is left to ``_first_leaf``.
    """
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, (int, float, list)) for v in x[:1]):
        try:
            return np.asarray(x)
        except Exception:
            return None
    for attr in ("numpy", "to_numpy"):   # tensors; pandas
        if hasattr(x, attr) and hasattr(x, "shape"):
            try:
                return np.asarray(getattr(x, attr)())
            except Exception:
                return None
    return None


def _first_leaf(x):
    """The first input of a structure, in the order Keras flattens it (dict keys sorted)."""
    for _ in range(100):
        if isinstance(x, dict) and x:
            x = x[sorted(x, key=str)[0]]
        elif isinstance(x, (list, tuple)) and x:
            x = x[0]
        else:
            break
    return x


def _user_namespace():
    try:
        return get_ipython().user_ns  # noqa: F821 (defined inside IPython)
    except NameError:
        return sys.modules["__main__"].__dict__


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


def _lineage_error(exc):
    """Recording never breaks student code: a failure of its own is logged for the grader instead."""
    _state["calls"].append({"kind": "lineage_error", "question": _state["question"], "error": repr(exc)})


class _Bound:
    """A call's arguments by name (defaults applied, ``**kwargs`` spread), and which were given how."""

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


def _disguised(wrapper, original):
    """The wrapper with the original's name, docs and signature, and no attribute leading back to it."""
    wrapper.__name__ = getattr(original, "__name__", wrapper.__name__)
    wrapper.__qualname__ = getattr(original, "__qualname__", wrapper.__qualname__)
    wrapper.__doc__ = getattr(original, "__doc__", None)
    try:
        wrapper.__signature__ = inspect.signature(original)
    except (TypeError, ValueError):
        pass
    return wrapper
