"""Fits run several batches per call into TensorFlow (steps_per_execution), where that cannot change what
they compute."""

from .state import _Bound, _disguised, _state, _uid

BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end")


def _accelerate(entry, model, fit, args, kwargs):
    """Run this fit ``steps_per_execution`` batches per call into TensorFlow, when that cannot change
    what it computes: array data, no steps_per_epoch, the student never set steps_per_execution,
    no callback of theirs hooks into batches.  The same batches, in the same order, update the same
    weights (the grader's identity test checks it); only the progress bar is updated less often.
    Returns what restores the model afterwards, or None when the fit runs as written."""
    steps = int(_state["config"].get("steps_per_execution") or 0)
    try:
        if steps <= 1 or entry is None or entry.get("x", {}).get("kind") != "array" \
                or entry.get("steps_per_epoch") is not None or _uid(model) in _state["explicit_steps"] \
                or getattr(model, "steps_per_execution", None) != 1 or getattr(model, "run_eagerly", True):
            return None
        callbacks = _Bound(fit, model, args, kwargs).arguments.get("callbacks") or []
        if not isinstance(callbacks, (list, tuple)) or any(
                not getattr(getattr(cb, hook, None), "_is_default", False) for cb in callbacks for hook in BATCH_HOOKS):
            return None
    except Exception:
        return None

    def restore():
        model.steps_per_execution = 1
        model.train_function = model.test_function = None    # rebuilt as the student's next call expects

    model.steps_per_execution = steps
    model.train_function = model.test_function = None
    entry["accelerated"] = steps
    return restore


def _wrap_compile(original):
    """Notes the models whose compile() sets steps_per_execution: the grader never changes those."""
    def compile(self, *args, **kwargs):
        try:
            bound = _Bound(original, self, args, kwargs)
            if "steps_per_execution" in bound.kwargs_given | bound.positional_given:
                _state["explicit_steps"].add(_uid(self))
        except Exception:
            pass
        return original(self, *args, **kwargs)

    return _disguised(compile, original)
