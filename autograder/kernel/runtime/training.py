"""Training outside fit: sessions of train_on_batch calls or of a custom loop on one model, the batches
their forward passes in training mode saw, and the updates their optimizers applied."""

import numpy as np

from .fingerprints import HEAD_ROWS, fingerprint, row_hashes
from .format import PROJECTION, ROW_HASHES
from .state import _as_array, _lineage_error, _origin, _state

SESSION_ROWS = 400_000    # distinct rows fingerprinted per session of training outside fit
PENDING_BATCHES = 256     # training-mode forward passes kept before they are taken as training anyway


class _Session:
    """Training outside fit on one model, in one question, by one route: its call log entry and the
    distinct rows it trained on, fingerprinted as a fit's are."""

    def __init__(self, uid, via):
        self.entry = {"kind": "train", "via": via, **_origin(), "model": uid, "steps": 0, "batches": 0,
                      "model_optimizer_steps": 0, "x": {"kind": "batches", "n": 0, "distinct": 0, "batch": None}}
        self.seen = {}            # row hash -> None, in the order first seen
        self.projected = []
        self.spectra = []
        self.head = []
        self.head_rows = 0
        _state["calls"].append(self.entry)

    def add(self, batch):
        arr = _as_array(batch)
        if arr is None or not arr.ndim or not len(arr):
            self.entry["x"]["why"] = "type"
            return
        rows = np.ascontiguousarray(arr).reshape(len(arr), -1)
        x = self.entry["x"]
        x["n"] += len(rows)
        x["batch"] = x["batch"] or len(rows)
        self.entry["batches"] += 1
        hashes = row_hashes(rows)
        new = [i for i, h in enumerate(hashes) if h not in self.seen][:max(0, SESSION_ROWS - len(self.seen))]
        if len(new) < sum(h not in self.seen for h in hashes):
            x["truncated"] = True
        if not new:
            return
        fresh = arr[new]
        fresh_hashes, projected, spectra = fingerprint(fresh, [hashes[i] for i in new])
        self.seen.update(dict.fromkeys(fresh_hashes))
        if projected is not None:
            self.projected.append(projected)
            self.spectra.append(spectra)
        if self.head_rows < HEAD_ROWS:
            self.head.append(np.array(fresh[:HEAD_ROWS - self.head_rows], copy=True))
            self.head_rows += len(self.head[-1])
        x["distinct"] = len(self.seen)

    def finish(self):
        """Writes the fingerprints into the entry (the capture calls it; it may be called again)."""
        entry, uid = self.entry, self.entry["model"]
        entry[ROW_HASHES] = list(self.seen)
        if self.projected and sum(len(p) for p in self.projected) == len(self.seen):
            key = "session%d" % id(self)
            _state["projections"][key] = np.concatenate(self.projected)
            _state["spectra"][key] = np.concatenate(self.spectra)
            entry[PROJECTION] = key
        if self.head and uid not in _state["fit_heads"]:
            _state["fit_heads"][uid] = np.concatenate(self.head)


def _session(uid, via):
    key = (uid, _state["question"], via)
    if key not in _state["sessions"]:
        _state["sessions"][key] = _Session(uid, via)
    return _state["sessions"][key]


def _forward_seen(uid, batch, training):
    """A forward pass outside Keras' loops.  In training mode its batch becomes training data once the
    model changes (an optimizer step, or BatchNormalization's statistics): predictions with dropout on
    (training=True, no update) train nothing."""
    try:
        if not training:
            _state["pending"][uid] = batch
            return
        pending = _state["train_forward"].setdefault(uid, [])
        # A batch a graph hook hands over may share its buffer with TensorFlow: small ones are copied.
        small = isinstance(batch, np.ndarray) and len(batch) <= 4096
        pending.append(np.array(batch, copy=True) if small else batch)
        if len(pending) > PENDING_BATCHES:
            _trained_by_forwards(uid)
    except Exception as exc:
        _lineage_error(exc)


def _trained_by_forwards(uid):
    """The pending training-mode batches changed the model: they are training data."""
    session = _session(uid, "custom_loop")
    for batch in _state["train_forward"].pop(uid, []):
        session.add(batch)
    _state["trained_since"][uid] = _state["trained_since"].get(uid, 0) + 1


def _graph_hook(callback, tensor):
    """Inside a tf.function being traced: ``callback(values)`` each time the graph runs (a stateful op,
    which tf.function runs in program order).  Never under XLA, which cannot compile it."""
    try:
        import tensorflow as tf
        from tensorflow.python.ops import control_flow_util

        if tf.executing_eagerly() or not isinstance(tensor, tf.Tensor) or \
                control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()):
            return

        def seen(*values):
            callback(*values)
            return np.int64(0)
        tf.numpy_function(seen, [tensor] if tensor is not None else [], tf.int64, stateful=True,
                          name="autograder_seen")
    except Exception:
        pass


def _models_owning(variables):
    ids = {id(v) for v in variables}
    return [uid for uid, model in list(_state["models"].items())
            if any(id(v) in ids for v in model.trainable_variables)]


def _steps_seen(uids, optimizer):
    """An optimizer applied one update to these models' variables: training outside fit.  Without a
    training-mode forward pass since the last update, the batch is the last forward pass's (eager loops)."""
    for uid in uids:
        try:
            session = _session(uid, "custom_loop")
            pending = _state["pending"].pop(uid, None)
            if _state["train_forward"].get(uid):
                _trained_by_forwards(uid)
            elif pending is not None:
                session.add(pending)
            session.entry["steps"] += 1
            model = _state["models"].get(uid)
            if model is not None and getattr(model, "optimizer", None) is optimizer:
                session.entry["model_optimizer_steps"] += 1
            _state["trained_since"][uid] = _state["trained_since"].get(uid, 0) + 1
        except Exception as exc:
            _lineage_error(exc)
