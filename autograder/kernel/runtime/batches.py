"""Generators and PyDatasets: the batches Keras pulls from them during a fit, followed on their way."""

import numpy as np

from .fingerprints import _fingerprint_training
from .inputs import FINGERPRINT_ROWS, _array_info
from .state import _as_array, _Bound, _first_leaf, _state


class _Batches:
    """The x rows of the batches Keras pulls from a generator or a PyDataset during one fit.

    Batches are kept by index, first epoch only, copied (a generator may refill one buffer)
    and at most FINGERPRINT_ROWS rows in all.  Never raises.
    """

    def __init__(self, steps):
        self.steps = steps          # batches in the first epoch when fit was given steps_per_epoch
        self.sizes = {}             # index -> rows in that batch (None: not an array)
        self.rows = {}              # index -> copied rows, while under the cap
        self.kept = 0
        self.pulled = 0
        self.exhausted = False

    def add(self, index, batch):
        try:
            index = int(index)
            if index in self.sizes or (self.steps is not None and index >= self.steps):
                return
            x = batch[0] if isinstance(batch, (list, tuple)) and batch else batch    # (x, y[, w]), or x
            arr = _as_array(_first_leaf(x))
            self.sizes[index] = len(arr) if arr is not None and arr.ndim else None
            room = FINGERPRINT_ROWS - self.kept
            if self.sizes[index] and room > 0:
                self.rows[index] = np.array(arr[:room], copy=True)
                self.kept += len(self.rows[index])
        except Exception:
            pass


def _pass_through(generator, batches):
    """Yields exactly what ``generator`` yields, noting each batch on its way to Keras."""
    for batch in generator:
        batches.add(batches.pulled, batch)
        batches.pulled += 1
        yield batch
    batches.exhausted = True


def _watch_items(dataset, batches):
    """Note the batches Keras reads from one PyDataset; returns the function that stops it.

    Python looks ``dataset[i]`` up on the class, so the class's ``__getitem__`` is wrapped
    (for this instance only, returning what the original returns) until the fit ends.
    """
    cls = type(dataset)
    own = cls.__dict__.get("__getitem__")
    read = cls.__getitem__

    def __getitem__(self, index):
        item = read(self, index)
        if self is dataset:
            batches.add(index, item)
        return item

    cls.__getitem__ = __getitem__

    def restore():
        if own is None:
            del cls.__getitem__
        else:
            cls.__getitem__ = own
    return restore


def _finish_batches(entry, batches, epoch, why=None):
    """Fill a fit's entry from the batches seen; ``epoch`` batches make its first epoch (None: unknown)."""
    info, sizes = entry["x"], batches.sizes
    if sizes:
        info["batch"] = sizes[min(sizes)]    # the first batch: the last one may be smaller
    entry["batch_size"], entry["batch_size_how"] = info["batch"], "data"
    if None in sizes.values():
        why = "not_arrays"
    if why or epoch is None or any(sizes.get(i) is None for i in range(epoch)):
        info["why"] = why or ("multiprocessing" if info.get("multiprocessing") else "incomplete")
        return
    info.pop("why", None)
    info["n"] = sum(sizes[i] for i in range(epoch))
    parts = [batches.rows[i] for i in range(epoch) if i in batches.rows]
    if parts:
        rows = np.concatenate(parts)
        info.update(_array_info(rows, info["kind"]), n=info["n"], fingerprinted=len(rows), ordered=True, raw=True)
        _fingerprint_training(entry, rows)


def _follow_data(kind, entry, *, fit, model, args, kwargs):
    """Before a fit: how to call it, and what to run once it is over (None: nothing).

    A generator is handed to Keras through a pass-through generator; a PyDataset is watched
    while Keras reads it.  A fit on rows that a map transforms leaves no training head (it
    would not be in the model's input space).  Never raises: on any failure the fit is called
    as the student wrote it.
    """
    try:
        info = entry["x"] if kind == "fit" and entry is not None and "model" in entry else {}
        if info.get("raw") is False:
            _state["fit_heads"].pop(entry["model"], None)
        if info.get("kind") not in ("generator", "PyDataset"):
            return args, kwargs, None
        x = args[0] if args else kwargs.get("x")
        steps = entry.get("steps_per_epoch")
        steps = int(steps) if isinstance(steps, (int, np.integer)) and steps > 0 else None
        batches = _Batches(steps)
        if info["kind"] == "generator":
            tapped = _pass_through(x, batches)
            args, kwargs = ((tapped,) + tuple(args[1:]), kwargs) if args else (args, {**kwargs, "x": tapped})

            def finish():
                # Without steps_per_epoch, the first epoch ends when the generator runs out.
                epoch = batches.pulled if batches.exhausted and (steps is None or batches.pulled < steps) else steps
                _finish_batches(entry, batches, epoch)
        else:
            info["multiprocessing"] = bool(getattr(x, "use_multiprocessing", False))
            shuffle = _Bound(fit, model, args, kwargs).arguments.get("shuffle", True)
            restore = _watch_items(x, batches)

            def finish():
                restore()
                try:
                    total = x.num_batches
                except Exception:   # an infinite PyDataset without num_batches
                    total = None
                epoch = min(steps, total) if steps and total else steps or total
                # steps_per_epoch below the length, shuffled: which batches made the epoch is unknown.
                why = "steps_subset" if steps and total and steps < total and shuffle else None
                _finish_batches(entry, batches, epoch, why)
    except Exception:
        return args, kwargs, None

    def finish_quietly():
        try:
            finish()
        except Exception as exc:    # recording must never break student code
            entry["x"]["record_error"] = repr(exc)
    return args, kwargs, finish_quietly
