"""Recognise the genuine MNIST images inside a student's arrays, whatever scaling they applied.

Students feed the network raw pixels, ``x / 255``, standardised pixels, 784-vectors or
28x28 images.  All of these are a per-pixel affine function of the genuine images, so
the grader fits that function, checks that it explains the student's array exactly,
and then evaluates on the genuine test set mapped into the same input space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..kernel.runtime.format import ROW_HASHES

RELATIVE_TOLERANCE = 1e-3
# Float64 work on a 10,000-image test set is done in pieces: a scoring process's peak memory.
ROWS = 2000        # images mapped at a time
COLUMNS = 64       # pixels fitted at a time


@dataclass(frozen=True)
class InputSpace:
    """student = scale * genuine + offset, per pixel, then reshaped to ``shape``."""
    scale: np.ndarray
    offset: np.ndarray
    shape: tuple[int, ...]      # per-sample shape, e.g. (784,) or (28, 28)
    dtype: str

    def apply(self, genuine: np.ndarray) -> np.ndarray:
        flat = genuine.reshape(len(genuine), -1)
        dtype = np.dtype(self.dtype)
        # An integer space maps the images twice (to decide the dtype, then to fill it): cheaper than
        # holding all of them in float64, which is what the pieces avoid.
        if not np.issubdtype(dtype, np.floating) and not all(
                np.allclose(mapped, np.rint(mapped)) for mapped in self._mapped(flat)):
            dtype = np.dtype(np.float32)
        out = np.empty(flat.shape, dtype=dtype)
        for start, mapped in zip(range(0, len(flat), ROWS), self._mapped(flat)):
            out[start:start + len(mapped)] = mapped.astype(dtype)
        return out.reshape((len(genuine),) + tuple(self.shape))

    def _mapped(self, flat: np.ndarray):
        """The map in float64, ROWS rows at a time: elementwise, so the same values as all at once."""
        for start in range(0, len(flat), ROWS):
            yield flat[start:start + ROWS].astype(np.float64) * self.scale + self.offset


def fit_input_space(student: np.ndarray, genuine: np.ndarray) -> InputSpace | None:
    """The per-pixel affine map from ``genuine`` rows to ``student`` rows, or None."""
    student = np.asarray(student)
    if student.ndim < 2 or len(student) != len(genuine) or not np.issubdtype(student.dtype, np.number):
        return None
    s = student.reshape(len(student), -1)
    g = genuine.reshape(len(genuine), -1)
    if s.shape != g.shape:
        return None
    blocks = [_fit_pixels(s[:, j:j + COLUMNS], g[:, j:j + COLUMNS]) for j in range(0, s.shape[1], COLUMNS)]
    if any(b is None for b in blocks):
        return None
    scale, offset, varying, error, size = (np.concatenate(parts) for parts in zip(*blocks))
    tolerance = RELATIVE_TOLERANCE * max(1.0, float(size.max()))
    if float(error.max()) > tolerance:
        return None
    if not np.any(scale[varying] != 0):
        return None
    return InputSpace(scale, offset, tuple(student.shape[1:]), str(student.dtype))


def _fit_pixels(student: np.ndarray, genuine: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """The map of a few pixel columns, with each column's largest error and largest |student| value.
    A column's figures depend on that column only, so fitting COLUMNS at a time gives the values of
    fitting all 784 at once with a fraction of the float64 temporaries."""
    s, g = student.astype(np.float64), genuine.astype(np.float64)
    if not np.all(np.isfinite(s)):
        return None
    g_mean, s_mean = g.mean(axis=0), s.mean(axis=0)
    g_var = ((g - g_mean) ** 2).mean(axis=0)
    cov = ((g - g_mean) * (s - s_mean)).mean(axis=0)
    varying = g_var > 0
    scale = np.where(varying, cov / np.where(varying, g_var, 1.0), 1.0)
    offset = s_mean - scale * g_mean
    # A constant genuine pixel maps to a constant student pixel: any scale explains it.
    offset = np.where(varying, offset, s_mean)
    scale = np.where(varying, scale, 0.0)
    return scale, offset, varying, np.abs(g * scale + offset - s).max(axis=0), np.abs(s).max(axis=0)


def trained_rows(n: int, validation_split: float | None, has_validation_data: bool = False) -> int:
    """How many leading rows Keras trains on: ``validation_split`` holds out the last ones
    (keras/src/trainers/data_adapters/array_slicing.py, Keras 3: floor) unless ``validation_data``
    is given, in which case it is ignored."""
    if not validation_split or has_validation_data:
        return n
    return int(math.floor(n * (1.0 - validation_split)))


def exact_test_rows(call: dict, test_hashes: set[str]) -> np.ndarray:
    """Which rows a recorded fit call trained on are test images byte for byte (validation rows excluded)."""
    hashes = call.get(ROW_HASHES) or []
    exact = np.fromiter((h in test_hashes for h in hashes), dtype=bool, count=len(hashes))
    return exact[:trained_rows(len(exact), call.get("validation_split"), bool(call.get("has_validation_data")))]
