"""The weight lineage: every change of a model's weights is accounted for.

By a recorded fit, by recorded training outside fit (train_on_batch; custom loops, whose data is
seen where it enters the model in training mode and whose updates are seen where an optimizer
applies them: training.py), or by a copy of another model's accounted weights (set_weights,
load_weights, assign), which carries that model's history with it.  A change with none of these
causes is recorded as "unaccounted" and the scoring process fails the question's accuracy checks.
Observations happen where Python calls through the recorder's wrappers (recorder.py).
"""

import hashlib

import numpy as np

from .state import _lineage_error, _origin, _state, _uid
from .training import _trained_by_forwards


def _var_digest(variable):
    value = np.ascontiguousarray(variable.numpy())
    return hashlib.blake2b(value.tobytes() + str((value.shape, value.dtype.str)).encode(), digest_size=16).hexdigest()


def _weights(model):
    """The variables that decide what a model computes, trainable or not (BatchNormalization's statistics);
    not the random state a Dropout layer advances at each call in training mode."""
    return [v for v in model.variables if "seed_generator" not in getattr(v, "path", v.name)]


def _weights_digest(model):
    h = hashlib.blake2b(digest_size=16)
    for variable in _weights(model):
        h.update(_var_digest(variable).encode())
    return h.hexdigest()


def _fresh(model):
    """Whether every variable holds the value it was created with (unknown creation values count)."""
    for variable in _weights(model):
        ref, digest = _state["var_init"].get(id(variable), (None, None))
        if ref is not None and ref() is variable and _var_digest(variable) != digest:
            return False
    return True


def _eager():
    import tensorflow as tf
    return tf.executing_eagerly()


def _accept(model):
    """The model's weights as they are now are accounted for."""
    try:
        if not _eager():
            return
        uid, digest = _uid(model), _weights_digest(model)
        _state["accounted"][uid] = digest
        _state["owners"].setdefault(digest, uid)
        _state["trained_since"].pop(uid, None)
    except Exception:
        pass


def _observe(model, _observing=None):
    """Accounts for whatever changed the model's weights since they were last accounted for (never raises)."""
    observing = set() if _observing is None else _observing
    try:
        uid = _uid(model)
        if not _eager() or uid in observing:
            return
        observing.add(uid)
        digest = _weights_digest(model)
        if digest == _state["accounted"].get(uid):
            _state["train_forward"].pop(uid, None)      # forward passes in training mode that changed nothing
            return
        if _state["train_forward"].get(uid):
            _trained_by_forwards(uid)
        if not _state["trained_since"].get(uid) and not _fresh(model):
            for other in list(_state["models"].values()):    # a copy of weights another model has now
                _observe(other, observing)
            source = _state["owners"].get(digest)
            event = {"kind": "copy", "from": source} if source not in (None, uid) else {"kind": "unaccounted"}
            _state["calls"].append({**event, **_origin(), "model": uid})
        _accept(model)
    except Exception as exc:
        _lineage_error(exc)


def _lineage(uid):
    """The models whose recorded history shaped ``uid``'s weights: itself and those it copied weights from."""
    found, todo = set(), [uid]
    while todo:
        current = todo.pop()
        if current in found or current is None:
            continue
        found.add(current)
        todo += [c.get("from") for c in _state["calls"] if c.get("kind") == "copy" and c.get("model") == current]
    return found
