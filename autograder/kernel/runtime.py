"""Code that runs inside the student's kernel, injected by the hidden preamble.

It is self-contained (standard library, NumPy, Keras) because it is shipped into the
kernel as source, never imported from the grader's package.  It computes no score:
it only serves MNIST offline, seeds, records ``fit``/``predict``/``evaluate`` calls and
exports each question's artifacts for the clean scoring process.
"""

import hashlib
import importlib
import inspect
import json
import linecache
import os
import pickle
import random
import re
import sys
import time
import traceback
import types
import weakref

import numpy as np

TEST_ROWS = 10000
HEAD_ROWS = 2000
IMAGE_FEATURES = 784      # 28 x 28 pixels, however the rows are shaped
PROJECTION_DIMS = 64      # near-duplicate fingerprints: a fixed random projection of each row
PROJECTION_SEED = 784_064
KEPT_ROW_HASHES = 4

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
    # Weight lineage: every change of a model's weights is accounted for (see "Training outside fit").
    "accounted": {},      # uid -> digest of the weights last accounted for
    "owners": {},         # digest of accounted weights -> uid of the first model that had them
    "trained_since": {},  # uid -> recorded training steps and batches since its weights were last accounted for
    "var_init": {},       # id(variable) -> (weakref to it, digest of its value when created)
    "sessions": {},       # (uid, question, via) -> _Session: training outside fit
    "pending": {},        # uid -> the last batch an eager forward pass outside training mode saw
    "train_forward": {},  # uid -> batches of training-mode forward passes not yet known to have trained it
}
BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end")


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


SPECTRUM_SEED = 420_064
_spectrum = []


def spectrum_rows(arr):
    """Each 28x28 image's Fourier magnitudes (the constant term left out) through one fixed random
    projection, or None for other shapes.  The magnitudes do not change when an image is shifted (MNIST's
    digits sit on an empty border, so np.roll and a zero-filled shift agree), nor, but for a common factor,
    when all its pixels are scaled: a test image moved a little is found by them."""
    rows = np.asarray(arr).reshape(len(arr), -1)
    if rows.shape[1] != IMAGE_FEATURES or not np.issubdtype(rows.dtype, np.number):
        return None
    if not _spectrum:
        rng = np.random.default_rng(SPECTRUM_SEED)
        _spectrum.append((rng.standard_normal((28 * 15, PROJECTION_DIMS)) / np.sqrt(PROJECTION_DIMS)).astype(np.float32))
    out = np.empty((len(rows), PROJECTION_DIMS), dtype=np.float32)
    for start in range(0, len(rows), 10000):
        images = rows[start:start + 10000].astype(np.float32).reshape(-1, 28, 28)
        magnitudes = np.abs(np.fft.rfft2(images)).reshape(len(images), -1).astype(np.float32)
        magnitudes[:, 0] = 0
        out[start:start + 10000] = magnitudes @ _spectrum[0]
    return out


def _fingerprint_training(entry, rows):
    """What the scoring process needs to tell which training rows are test images."""
    key = entry["x"].get("sha256")     # None for rows read from a dataset: nothing to know them by
    entry["row_hashes"] = _row_hashes_of(key, rows) if key else row_hashes(rows)
    if key and key not in _state["projections"]:
        projected = project_rows(rows)
        if projected is not None:
            _state["projections"][key] = projected
            _state["spectra"][key] = spectrum_rows(rows)
    if key in _state["projections"]:
        entry["projection"] = key
    _state["fit_heads"][entry["model"]] = np.array(rows[:HEAD_ROWS], copy=True)


def _row_hashes_of(key, rows):
    """The same training array fitted again (q2, q3, q4 share one) is hashed once."""
    known = _state["row_hashes"]
    if key not in known:
        if len(known) >= KEPT_ROW_HASHES:
            del known[next(iter(known))]
        known[key] = row_hashes(rows)
    return known[key]


def _array_info(arr, kind="array"):
    return {
        "kind": kind,
        "n": int(arr.shape[0]) if arr.ndim else None,
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        "sha256": array_sha256(arr),
    }


def array_sha256(arr):
    """The SHA-256 of an array's bytes in C order (the scoring process keys its caches on it too)."""
    contiguous = np.ascontiguousarray(arr)
    try:
        return hashlib.sha256(contiguous.data).hexdigest()     # without a copy of the bytes
    except (TypeError, ValueError, BufferError):   # object arrays have no plain buffer
        return hashlib.sha256(contiguous.tobytes()).hexdigest()


def _describe_input(x, training=False):
    """What a call's ``x`` is, and its rows as one array when they can be read.

    Arrays describe themselves; a structure of arrays (several inputs, or ``fit(x=(X, y))``)
    through its first input.  Data that Keras iterates itself (tf.data, generators,
    PyDataset) gets ``batch``, the batch size the data imposes, and ``why`` while something
    could not be read.  ``training`` accepts the rows the samples come from even when the
    model sees them reordered (shuffle) or transformed (map), for fingerprints.
    """
    arr, kind = _as_array(x), "array"
    if arr is None and isinstance(x, (list, tuple, dict)):
        arr, kind = _as_array(_first_leaf(x)), "structure"
    if arr is not None:
        return _array_info(arr, kind), arr
    if _inherits(x, "DatasetV2", "tensorflow.python"):
        try:
            return _describe_dataset(x, training)
        except Exception as exc:    # a pipeline this runtime does not know: say so, keep the call
            return {"kind": "tf.data", "n": None, "batch": None, "why": "error", "record_error": repr(exc)}, None
    if inspect.isgenerator(x) or _inherits(x, "PyDataset", "keras"):
        # Read during the fit by _follow_data; until then nothing is known.
        return {"kind": "generator" if inspect.isgenerator(x) else "PyDataset", "n": None, "batch": None,
                "why": "incomplete"}, None
    return {"kind": type(x).__name__, "n": None, "batch": None, "why": "type"}, None


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


def _inherits(x, name, module):
    return any(c.__name__ == name and module in str(c.__module__) for c in type(x).__mro__)


# --- Data that Keras iterates itself --------------------------------------------------------
# The batch size comes from the data, not from fit's batch_size argument.  tf.data pipelines are
# read statically, never iterated (iterating would advance their shuffle seeds and change what
# the fit sees); generators and PyDatasets are followed while Keras pulls their batches.

FINGERPRINT_ROWS = 70000   # rows of such data fingerprinted at most: all of MNIST's images
BATCH_OPS = {"_BatchDataset", "_ParallelBatchDataset", "_PaddedBatchDataset"}
# Operations that keep a pipeline's samples: some reorder them, some change their values.
KEEP_SAMPLES = {"_PrefetchDataset", "_OptionsDataset", "CacheDataset", "_CacheDataset", "_AssertCardinalityDataset",
                "_MapDataset", "_ParallelMapDataset", "_ShuffleDataset", "_RepeatDataset"}
REORDER = {"_ShuffleDataset", "_RepeatDataset"}
CHANGE_VALUES = {"_MapDataset", "_ParallelMapDataset"}
SLICE_OPS = {"_TakeDataset", "_SkipDataset", "_ShardDataset"}
SOURCES = {"Tensor": "from_tensors", "TensorSlice": "from_tensor_slices", "Generator": "from_generator"}


def _method(ds):
    """The tf.data method that made a dataset: _ParallelMapDataset -> 'map'."""
    func = getattr(getattr(ds, "_map_func", None), "_func", None)
    if "from_generator" in getattr(func, "__qualname__", ""):
        return "from_generator"     # a flat_map over one tensor, inside
    name = type(ds).__name__.strip("_").replace("Parallel", "")
    name = name[:-len("Dataset")] if name.endswith("Dataset") else name
    return SOURCES.get(name) or "".join("_" + c.lower() if c.isupper() and i else c.lower()
                                        for i, c in enumerate(name))


def _hidden_by(ds):
    method = _method(ds)
    return ("op:" if hasattr(ds, "_input_dataset") and method != "from_generator" else "source:") + method


def _cardinality(ds):
    count = int(ds.cardinality())
    return count if count >= 0 else None


def _slice_rows(ds, rows):
    name = type(ds).__name__
    if name == "_ShardDataset":
        return rows[int(ds._index)::int(ds._num_shards)]
    count = int(ds._count)
    if name == "_TakeDataset":
        return rows if count < 0 else rows[:count]
    return rows[len(rows) if count < 0 else count:]


def _dataset_rows(ds, depth=0):
    """The x rows an unbatched tf.data pipeline draws its samples from (one pass), read statically.

    Returns (rows, ordered, raw, why): rows, or None and what hid them; whether the rows are in
    the order the pipeline yields them; whether no map changed their values.
    """
    name = type(ds).__name__
    child = getattr(ds, "_input_dataset", None)
    if name == "_TensorSliceDataset":
        return np.asarray(ds._tensors[0].numpy()), True, True, None
    if name == "_ZipDataset":
        rows, ordered, raw, why = _dataset_rows(_first_leaf(ds._datasets), depth + 1)
        count = _cardinality(ds)
        if rows is not None and count is not None and count < len(rows):
            return (rows[:count], ordered, raw, None) if ordered else (None, False, raw, "subset:zip")
        return rows, ordered, raw, why
    if name == "_ConcatenateDataset":
        parts = [_dataset_rows(d, depth + 1) for d in (child, ds._dataset_to_concatenate)]
        hidden = [p for p in parts if p[0] is None]
        if hidden:
            return hidden[0]
        return np.concatenate([p[0] for p in parts]), parts[0][1] and parts[1][1], parts[0][2] and parts[1][2], None
    if child is None or depth > 100 or name not in KEEP_SAMPLES | SLICE_OPS:
        return None, False, False, _hidden_by(ds)
    rows, ordered, raw, why = _dataset_rows(child, depth + 1)
    if rows is not None and name in SLICE_OPS:
        if not ordered:
            return None, False, raw, "subset:" + _method(ds)   # a random subset: shuffle, then take
        rows = _slice_rows(ds, rows)
    return rows, ordered and name not in REORDER, raw and name not in CHANGE_VALUES, why


def _describe_dataset(ds, training):
    """A tf.data pipeline, read without iterating it: batch size, samples in one pass, their x rows."""
    info = {"kind": "tf.data", "n": None, "batch": None}
    node, ordered, raw, counted = ds, True, True, True
    for _ in range(100):    # down to the batch operation: what happens above it acts on whole batches
        name = type(node).__name__
        if name in BATCH_OPS:
            break
        if name == "_ZipDataset":   # zip(batched x, batched y): the inputs are the first
            node = _first_leaf(node._datasets)
            continue
        child = getattr(node, "_input_dataset", None)
        if child is None or name not in KEEP_SAMPLES | SLICE_OPS | {"_FilterDataset"}:
            info["why"] = "not_batched" if name == "_TensorSliceDataset" else _hidden_by(node)
            return info, None
        if name not in KEEP_SAMPLES and counted:
            counted, info["why"] = False, "after_batch:" + _method(node)
        ordered, raw, node = ordered and name not in REORDER, raw and name not in CHANGE_VALUES, child
    else:
        info["why"] = _hidden_by(node)
        return info, None
    info["batch"] = int(node._batch_size)
    if not counted:
        return info, None
    elements = node._input_dataset
    rows, rows_ordered, rows_raw, why = _dataset_rows(elements)
    ordered, raw = ordered and rows_ordered, raw and rows_raw
    info["n"] = len(rows) if rows is not None else _cardinality(elements)
    if bool(node._drop_remainder) and info["n"] is not None and info["batch"] > 0 and _cardinality(elements) is not None:
        info["n"] -= info["n"] % info["batch"]
        rows = rows[:info["n"]] if rows is not None and ordered else rows
    if why:
        info["why"] = why
    if rows is None or not rows.ndim or not (training or (ordered and raw)):
        return info, None
    kept = rows[:FINGERPRINT_ROWS] if training else rows
    info.update(_array_info(kept, "tf.data"), n=info["n"], fingerprinted=len(kept), ordered=ordered, raw=raw)
    return info, kept


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
            _state["calls"].append(entry)
        return result

    return _disguised(recorded, original)


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


# --- Training outside fit, and the weight lineage -----------------------------------------------------
# Every change of a model's weights must be accounted for: by a recorded fit, by recorded training
# outside fit (train_on_batch; custom loops, whose data is seen where it enters the model in training
# mode and whose updates are seen where an optimizer applies them), or by a copy of another model's
# accounted weights (set_weights, load_weights, assign), which carries that model's history with it.
# A change with none of these causes is recorded as "unaccounted" and the scoring process fails the
# question's accuracy checks.  Observations happen where Python calls through the wrappers above.

SESSION_ROWS = 400_000    # distinct rows fingerprinted per session of training outside fit


def _lineage_error(exc):
    """Recording never breaks student code: a failure of its own is logged for the grader instead."""
    _state["calls"].append({"kind": "lineage_error", "question": _state["question"], "error": repr(exc)})


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
        for i in new:
            self.seen[hashes[i]] = None
        fresh = arr[new]
        projected = project_rows(fresh)
        if projected is not None:
            self.projected.append(projected)
            self.spectra.append(spectrum_rows(fresh))
        if self.head_rows < HEAD_ROWS:
            self.head.append(np.array(fresh[:HEAD_ROWS - self.head_rows], copy=True))
            self.head_rows += len(self.head[-1])
        x["distinct"] = len(self.seen)

    def finish(self):
        """Writes the fingerprints into the entry (the capture calls it; it may be called again)."""
        entry, uid = self.entry, self.entry["model"]
        entry["row_hashes"] = list(self.seen)
        if self.projected and sum(len(p) for p in self.projected) == len(self.seen):
            key = "session%d" % id(self)
            _state["projections"][key] = np.concatenate(self.projected)
            _state["spectra"][key] = np.concatenate(self.spectra)
            entry["projection"] = key
        if self.head and uid not in _state["fit_heads"]:
            _state["fit_heads"][uid] = np.concatenate(self.head)


def _session(uid, via):
    key = (uid, _state["question"], via)
    if key not in _state["sessions"]:
        _state["sessions"][key] = _Session(uid, via)
    return _state["sessions"][key]


PENDING_BATCHES = 256     # training-mode forward passes kept before they are taken as training anyway


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
    _state["Model"] = model_cls = keras.Model
    for kind in ("fit", "evaluate", "predict"):
        _replace(model_cls, kind, lambda original, kind=kind: _wrap(kind, original))
    _replace(model_cls, "predict_on_batch", lambda original: _wrap("predict", original))
    _replace(model_cls, "train_on_batch", _wrap_train_on_batch)
    _replace(model_cls, "compile", _wrap_compile)
    _replace(keras.Layer, "__call__", _wrap_call)
    _replace(keras.optimizers.Optimizer, "apply", _wrap_apply)
    _replace(keras.Variable, "_initialize", _wrap_initialize)


def _replace(cls, name, wrap):
    """Wrap ``name`` on the class of ``cls``'s hierarchy that defines it, so that no lookup through the
    class hierarchy (``type(model).__mro__``, ``keras.Layer.__call__``) reaches the original."""
    owner = next(c for c in cls.__mro__ if name in c.__dict__)
    setattr(owner, name, wrap(owner.__dict__[name]))


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


GRAPH_EXPORT = "saved_model"     # the traced computation of a model that runs notebook code
KERAS_MODULES = ("keras", "tensorflow", "tf_keras")


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
    """Export the question's artifacts into the grader's capture directory."""
    out = os.path.join(_state["config"]["capture_dir"], question)
    os.makedirs(out, exist_ok=True)
    meta = {"question": question, "errors": []}
    try:
        model, how = _choose_model(question)
        meta["model_found_by"] = how
        uid = _uid(model) if model is not None else None
        meta["model_uid"] = uid
        for session in _state["sessions"].values():
            session.finish()
        lineage = set()
        if model is not None:
            _observe(model)
            lineage = _lineage(uid)
            _state["depth"] += 1     # saving is the grader's, not a call to record
            try:
                model.save(os.path.join(out, "model.keras"))
                meta["model_saved"] = True
            except Exception as exc:
                meta["model_saved"] = False
                meta["errors"].append("model.save: " + repr(exc))
            try:
                meta["notebook_code"] = _notebook_code(model)
                if meta["notebook_code"]:
                    model.export(os.path.join(out, GRAPH_EXPORT), format="tf_saved_model", verbose=False)
                    meta["graph_exported"] = True
            except Exception as exc:
                meta["errors"].append("model.export: " + repr(exc))
            finally:
                _state["depth"] -= 1
            arrays = {}
            for kind in ("evaluate", "predict"):
                arr = _state["last_inputs"].get((uid, kind))
                if arr is not None:
                    arrays[kind + "_x"] = np.asarray(arr)
            if uid in _state["fit_heads"]:
                arrays["fit_head_x"] = _state["fit_heads"][uid]
            for call in _state["calls"]:
                if call.get("model") in lineage and call.get("projection"):
                    arrays["projection_" + call["projection"]] = _state["projections"][call["projection"]]
                    arrays["spectrum_" + call["projection"]] = _state["spectra"][call["projection"]]
            if arrays:
                # Uncompressed: zlib took over a second per question for a file that lives minutes.
                np.savez(os.path.join(out, "inputs.npz"), **arrays)
        calls = [c for c in _state["calls"] if c.get("question") == question or c.get("model") in lineage]
        with open(os.path.join(out, "calls.json"), "w") as fh:
            json.dump({"meta": meta, "calls": calls}, fh, default=_plain)
    except Exception:
        meta["errors"].append(traceback.format_exc(limit=3))
        with open(os.path.join(out, "calls.json"), "w") as fh:
            json.dump({"meta": meta, "calls": []}, fh)
    finally:
        _state["question"] = None


# --- Replaying the instructor's first cells (grading only: notebook/memo.py plans it) ------------
# A cell of the template that only the template's code preceded computes the same thing for every
# student.  One recording kernel runs it between `memo_snapshot` and `memo_record`; each grading
# kernel then runs `memo_restore`: the same names bound to the same values, the same printed text.
_IPYTHON_NAMES = re.compile(r"^(_+\d*|_i+\d*|_[oid]h|__.*__|In|Out|get_ipython|exit|quit)$")
_ATOMS = (int, float, complex, str, bytes, bool, type(None), tuple)


def _visible():
    return {k: v for k, v in _user_namespace().items() if not _IPYTHON_NAMES.match(k)}


def _digest(value):
    """Identity and content; Keras and TensorFlow objects by identity only (pickling them saves models)."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return id(value), value.dtype.str, value.shape, array_sha256(value)
    if type(value).__module__.split(".")[0] in ("keras", "tensorflow", "tf_keras"):
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
