"""Fingerprints of the rows a model trains on, for the scoring process to find test images among them:
a hash of each row (exact copies), and each row through fixed random projections of its pixels and of its
spectrum (near-duplicates, and test images moved a little)."""

import hashlib

import numpy as np

from .format import PROJECTION, ROW_HASHES
from .state import _state

HEAD_ROWS = 2000          # rows of a training input exported for the scoring process to fit its input space on
IMAGE_FEATURES = 784      # 28 x 28 pixels, however the rows are shaped
PROJECTION_DIMS = 64      # near-duplicate fingerprints: a fixed random projection of each row
PROJECTION_SEED = 784_064
SPECTRUM_SEED = 420_064
KEPT_ROW_HASHES = 4


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


def array_sha256(arr):
    """The SHA-256 of an array's bytes in C order (the scoring process keys its caches on it too)."""
    contiguous = np.ascontiguousarray(arr)
    try:
        return hashlib.sha256(contiguous.data).hexdigest()     # without a copy of the bytes
    except (TypeError, ValueError, BufferError):   # object arrays have no plain buffer
        return hashlib.sha256(contiguous.tobytes()).hexdigest()


def fingerprint(rows, hashes=None):
    """The fingerprints of training rows: each row's hash and, for 784-feature images, each row projected
    and its spectrum projected (else None for both).  ``hashes``: the rows' hashes, when already known."""
    projected = project_rows(rows)
    spectra = spectrum_rows(rows) if projected is not None else None
    return (row_hashes(rows) if hashes is None else hashes), projected, spectra


def _fingerprint_training(entry, rows):
    """What the scoring process needs to tell which training rows are test images.  An array fitted again
    (q2, q3, q4 share one) is fingerprinted once; rows without a digest have no projection kept."""
    key = entry["x"].get("sha256")     # None for rows read from a dataset: nothing to know them by
    hashes = None
    if key and key not in _state["projections"]:
        hashes, projected, spectra = fingerprint(rows, _state["row_hashes"].get(key))
        if projected is not None:
            _state["projections"][key], _state["spectra"][key] = projected, spectra
    entry[ROW_HASHES] = _row_hashes_of(key, rows, hashes) if key else row_hashes(rows)
    if key in _state["projections"]:
        entry[PROJECTION] = key
    _state["fit_heads"][entry["model"]] = np.array(rows[:HEAD_ROWS], copy=True)


def _row_hashes_of(key, rows, hashes=None):
    """The row hashes of the training array ``key``, kept for the last KEPT_ROW_HASHES arrays: the same array
    fitted again is hashed once (``hashes``: already computed)."""
    known = _state["row_hashes"]
    if key not in known:
        if len(known) >= KEPT_ROW_HASHES:
            del known[next(iter(known))]
        known[key] = row_hashes(rows) if hashes is None else hashes
    return known[key]
