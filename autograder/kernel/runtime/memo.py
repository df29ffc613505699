"""Replaying the instructor's first cells (grading only: notebook/memo.py plans it).

A cell of the template that only the template's code preceded computes the same thing for every
student.  One recording kernel runs it between `memo_snapshot` and `memo_record`; each grading
kernel then runs `memo_restore`: the same names bound to the same values, the same printed text.
"""

import hashlib
import importlib
import json
import os
import pickle
import random
import re
import sys
import time
import types

import numpy as np

from .fingerprints import array_sha256
from .state import KERAS_MODULES, _state, _user_namespace

_IPYTHON_NAMES = re.compile(r"^(_+\d*|_i+\d*|_[oid]h|__.*__|In|Out|get_ipython|exit|quit)$")
_ATOMS = (int, float, complex, str, bytes, bool, type(None), tuple)


def _visible():
    return {k: v for k, v in _user_namespace().items() if not _IPYTHON_NAMES.match(k)}


def _digest(value):
    """Identity and content; Keras and TensorFlow objects by identity only (pickling them saves models)."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return id(value), value.dtype.str, value.shape, array_sha256(value)
    if type(value).__module__.split(".")[0] in KERAS_MODULES:
        return id(value), None
    try:
        return id(value), hashlib.sha256(pickle.dumps(value, protocol=4)).digest()
    except Exception:
        return id(value), None


def _random_states():
    return hashlib.sha256(pickle.dumps((random.getstate(), np.random.get_state()), protocol=4)).digest()


class _MemoPickler(pickle.Pickler):
    """Objects the cell found in the namespace stay references to them; modules are imported again."""
    def __init__(self, fh, existing):
        super().__init__(fh, protocol=4)
        self.existing = existing

    def persistent_id(self, obj):
        if isinstance(obj, types.ModuleType):
            return "module", obj.__name__
        if not isinstance(obj, _ATOMS) and id(obj) in self.existing:
            return "name", self.existing[id(obj)]
        if getattr(obj, "__module__", None) == "__main__" and callable(obj):
            raise pickle.PicklingError("defined in the notebook: %r" % (obj,))
        return None


class _MemoUnpickler(pickle.Unpickler):
    def persistent_load(self, pid):
        kind, name = pid
        return importlib.import_module(name) if kind == "module" else _user_namespace()[name]


def memo_snapshot():
    """Before an instructor cell is recorded."""
    _state["memo"] = {"names": {k: _digest(v) for k, v in _visible().items()}, "random": _random_states(),
                      "started": time.perf_counter()}


def memo_record(path, min_seconds):
    """After it: what it bound, pickled to ``path`` when it took ``min_seconds`` or more, and a JSON
    report beside it (the grader reads only that); a cell whose effects a replay could not give
    back (names deleted, objects changed in place, random numbers drawn) is refused."""
    before = _state.pop("memo")
    report = {"seconds": time.perf_counter() - before["started"], "refused": None}
    now = _visible()
    changed = {k: v for k, v in now.items() if before["names"].get(k) != _digest(v)}
    report["names"] = sorted(changed)
    if set(before["names"]) - set(now):
        report["refused"] = "names deleted"
    elif _random_states() != before["random"]:
        report["refused"] = "random numbers drawn"
    elif any(k in before["names"] and before["names"][k][0] == id(v) for k, v in changed.items()):
        report["refused"] = "an object changed in place"
    elif report["seconds"] < min_seconds:
        report["refused"] = "too quick to be worth it"
    else:
        try:
            with open(path, "wb") as fh:
                _MemoPickler(fh, {id(v): k for k, v in now.items() if k not in changed}).dump(changed)
        except Exception as exc:
            os.remove(path)     # half a pickle must never be replayed
            report["refused"] = "not picklable: " + repr(exc)[:200]
    with open(path + ".json", "w") as fh:
        json.dump(report, fh)


def memo_restore(path, streams, source):
    """Instead of the cell: its bindings, then its printed text, as the recording kernel saw them;
    the cell itself if the recording is gone (student code may delete files before a replay)."""
    try:
        with open(path, "rb") as fh:
            bindings = _MemoUnpickler(fh).load()
    except Exception:
        exec(compile(source, "<instructor cell>", "exec"), _user_namespace())
        return
    _user_namespace().update(bindings)
    for name, text in streams:
        (sys.stderr if name == "stderr" else sys.stdout).write(text)
