"""What a call's ``x`` is: arrays and structures of arrays, and tf.data pipelines, read statically.

The batch size of data that Keras iterates itself comes from the data, not from fit's batch_size
argument.  tf.data pipelines are read statically, never iterated (iterating would advance their
shuffle seeds and change what the fit sees); generators and PyDatasets are followed while Keras
pulls their batches (batches.py).
"""

import inspect

import numpy as np

from .fingerprints import array_sha256
from .state import _as_array, _first_leaf

FINGERPRINT_ROWS = 70000   # rows of data Keras iterates itself fingerprinted at most: all of MNIST's images
BATCH_OPS = {"_BatchDataset", "_ParallelBatchDataset", "_PaddedBatchDataset"}
# Operations that keep a pipeline's samples: some reorder them, some change their values.
KEEP_SAMPLES = {"_PrefetchDataset", "_OptionsDataset", "CacheDataset", "_CacheDataset", "_AssertCardinalityDataset",
                "_MapDataset", "_ParallelMapDataset", "_ShuffleDataset", "_RepeatDataset"}
REORDER = {"_ShuffleDataset", "_RepeatDataset"}
CHANGE_VALUES = {"_MapDataset", "_ParallelMapDataset"}
SLICE_OPS = {"_TakeDataset", "_SkipDataset", "_ShardDataset"}
SOURCES = {"Tensor": "from_tensors", "TensorSlice": "from_tensor_slices", "Generator": "from_generator"}


def _array_info(arr, kind="array"):
    return {
        "kind": kind,
        "n": int(arr.shape[0]) if arr.ndim else None,
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        "sha256": array_sha256(arr),
    }


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


def _inherits(x, name, module):
    return any(c.__name__ == name and module in str(c.__module__) for c in type(x).__mro__)


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
