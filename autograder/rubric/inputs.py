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

RELATIVE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class InputSpace:
    """student = scale * genuine + offset, per pixel, then reshaped to ``shape``."""
    scale: np.ndarray
    offset: np.ndarray
    shape: tuple[int, ...]      # per-sample shape, e.g. (784,) or (28, 28)
    dtype: str

    def apply(self, genuine: np.ndarray) -> np.ndarray:
        flat = genuine.reshape(len(genuine), -1).astype(np.float64)
        mapped = flat * self.scale + self.offset
        dtype = np.dtype(self.dtype)
        if not np.issubdtype(dtype, np.floating):
            dtype = np.dtype(np.float32) if not np.allclose(mapped, np.rint(mapped)) else dtype
        return mapped.astype(dtype).reshape((len(genuine),) + tuple(self.shape))


def fit_input_space(student: np.ndarray, genuine: np.ndarray) -> InputSpace | None:
    """The per-pixel affine map from ``genuine`` rows to ``student`` rows, or None."""
    student = np.asarray(student)
    if student.ndim < 2 or len(student) != len(genuine) or not np.issubdtype(student.dtype, np.number):
        return None
    s = student.reshape(len(student), -1).astype(np.float64)
    g = genuine.reshape(len(genuine), -1).astype(np.float64)
    if s.shape != g.shape or not np.all(np.isfinite(s)):
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
    tolerance = RELATIVE_TOLERANCE * max(1.0, float(np.abs(s).max()))
    if float(np.abs(g * scale + offset - s).max()) > tolerance:
        return None
    if not np.any(scale[varying] != 0):
        return None
    return InputSpace(scale, offset, tuple(student.shape[1:]), str(student.dtype))



def trained_rows(n: int, validation_split: float | None, has_validation_data: bool = False) -> int:
    """How many leading rows Keras trains on: ``validation_split`` holds out the last ones
    (keras/src/trainers/data_adapters/array_slicing.py, Keras 3: floor) unless ``validation_data``
    is given, in which case it is ignored."""
    if not validation_split or has_validation_data:
        return n
    return int(math.floor(n * (1.0 - validation_split)))


def exact_test_rows(call: dict, test_hashes: set[str]) -> np.ndarray:
    """Which rows a recorded fit call trained on are test images byte for byte (validation rows excluded)."""
    hashes = call.get("row_hashes") or []
    exact = np.fromiter((h in test_hashes for h in hashes), dtype=bool, count=len(hashes))
    return exact[:trained_rows(len(exact), call.get("validation_split"), bool(call.get("has_validation_data")))]
