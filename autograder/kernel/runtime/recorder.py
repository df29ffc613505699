"""The wrappers that record what a model is asked to do: fit, evaluate, predict, train_on_batch,
calls of a model on data (Layer.__call__), optimizer updates (Optimizer.apply) and the creation of
variables.  Each wrapper runs the original exactly as called; recording never breaks student code."""

import weakref

import numpy as np

from .acceleration import _accelerate
from .batches import _follow_data
from .fingerprints import _fingerprint_training
from .inputs import _describe_input
from .lineage import _accept, _eager, _observe, _var_digest
from .state import _Bound, _disguised, _first_leaf, _lineage_error, _origin, _state, _uid
from .training import _forward_seen, _graph_hook, _models_owning, _session, _steps_seen

TEST_ROWS = 10000     # an input of this many rows may be the test set: kept for the scoring process


def _how(bound, name):
    """'keyword', 'positional' or 'default': how an argument reached the call."""
    if name in bound.kwargs_given:
        return "keyword"
    if name in bound.positional_given:
        return "positional"
    return "default"


def _record(kind, model, fn, *, args, kwargs):
    try:
        bound = _Bound(fn, model, args, kwargs)
    except TypeError:
        return None
    a = bound.arguments
    x_info, x_arr = _describe_input(a.get("x"), training=kind == "fit")
    entry = {
        "kind": kind,
        **_origin(),
        "model": _uid(model),
        "x": x_info,
    }
    if kind in ("fit", "evaluate", "predict"):
        if "batch" in x_info:    # data that Keras iterates itself: its batches decide, whatever batch_size says
            entry["batch_size"], entry["batch_size_how"] = x_info["batch"], "data"
        else:
            entry["batch_size"], entry["batch_size_how"] = a.get("batch_size"), _how(bound, "batch_size")
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
            entry = _record(kind, self, original, args=args, kwargs=kwargs)
        except Exception as exc:  # recording must never break student code
            entry = {"kind": kind, "question": _state["question"], "record_error": repr(exc)}
        _observe(self)
        args, kwargs, finish = _follow_data(kind, entry, fit=original, model=self, args=args, kwargs=kwargs)
        restore = _accelerate(entry, self, original, args, kwargs) if kind == "fit" else None
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
            if restore is not None:
                restore()
            if finish is not None:
                finish()
            if kind == "fit":
                _accept(self)      # whatever the fit changed, the fit explains
        if entry is not None:
            if kind == "fit":
                history = getattr(result, "epoch", None)
                entry["epochs_run"] = len(history) if history is not None else None
                entry["history"] = _history(result)
            _state["calls"].append(entry)
        return result

    return _disguised(recorded, original)


def _history(result, limit=1000):
    """What the fit reported per epoch (History.history), numbers only: shown to the student as reported."""
    found = {}
    for key, values in (getattr(result, "history", None) or {}).items():
        try:
            found[str(key)] = [float(v) for v in list(values)[:limit]]
        except (TypeError, ValueError):
            continue
    return found


def _as_array_if_concrete(x):
    if isinstance(x, np.ndarray):
        return x
    if type(x).__name__ == "EagerTensor":
        return x
    return None


def _wrap_call(original):
    """Calls of a model on data, wherever Python looks ``__call__`` up (it is replaced on keras.Layer).
    Outside Keras' own loops: in training mode they feed training outside fit (eagerly, or through a
    hook in the graph a tf.function traces); otherwise, on concrete data, they count as a prediction."""
    def __call__(self, *args, **kwargs):
        if _state["depth"] or not args or not isinstance(self, _state["Model"]):
            return original(self, *args, **kwargs)
        training = kwargs.get("training") is True
        leaf = _first_leaf(args[0])
        entry = None
        if _as_array_if_concrete(leaf) is not None:
            uid = _uid(self)
            if training:
                _forward_seen(uid, leaf, True)
            else:
                _state["pending"][uid] = leaf
                x_info, x_arr = _describe_input(args[0])
                entry = {"kind": "predict", "via": "__call__", **_origin(), "model": uid, "x": x_info}
                if x_arr is not None and x_arr.ndim and x_arr.shape[0] == TEST_ROWS:
                    _state["last_inputs"][(uid, "predict")] = x_arr
        elif training:
            _graph_hook(lambda batch, uid=_uid(self): _forward_seen(uid, batch, True), leaf)
        _state["depth"] += 1
        try:
            return original(self, *args, **kwargs)
        finally:
            _state["depth"] -= 1
            if entry is not None:
                _state["calls"].append(entry)

    return _disguised(__call__, original)


def _wrap_initialize(original):
    """Notes each variable's value when Keras creates it: a model whose variables all hold the value
    they were created with is freshly initialised, whatever digest it had before it was built."""
    def _initialize(self, value):
        result = original(self, value)
        try:
            _state["var_init"][id(self)] = (weakref.ref(self), _var_digest(self))
        except Exception:     # created inside a graph: its first value cannot be read here
            pass
        return result

    return _disguised(_initialize, original)


def _wrap_apply(original):
    """optimizer.apply (apply_gradients calls it): an update of model variables outside Keras' loops."""
    def apply(self, grads, trainable_variables=None):
        if _state["depth"]:
            return original(self, grads, trainable_variables)
        if trainable_variables is not None:
            trainable_variables = list(trainable_variables)
        try:
            uids = _models_owning(trainable_variables if trainable_variables is not None
                                  else getattr(self, "_trainable_variables", []))
        except Exception:
            uids = []
        if uids and not _eager():
            import tensorflow as tf
            _graph_hook(lambda _: _steps_seen(uids, self), tf.constant(0))
        _state["depth"] += 1
        try:
            result = original(self, grads, trainable_variables)
        finally:
            _state["depth"] -= 1
        if uids and _eager():
            _steps_seen(uids, self)
        return result

    return _disguised(apply, original)


def _wrap_train_on_batch(original):
    def train_on_batch(self, *args, **kwargs):
        if _state["depth"]:
            return original(self, *args, **kwargs)
        _observe(self)
        uid = _uid(self)
        try:
            x = _Bound(original, self, args, kwargs).arguments.get("x")
            _session(uid, "train_on_batch").add(_first_leaf(x))
        except Exception as exc:
            _lineage_error(exc)
        _state["depth"] += 1
        try:
            return original(self, *args, **kwargs)
        finally:
            _state["depth"] -= 1
            try:
                entry = _session(uid, "train_on_batch").entry
                entry["steps"] += 1
                entry["model_optimizer_steps"] += 1
            except Exception:
                pass
            _state["trained_since"][uid] = _state["trained_since"].get(uid, 0) + 1

    return _disguised(train_on_batch, original)
