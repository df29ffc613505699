"""Training rows that are near-duplicates of test images, in the student's own input space.

Exact row hashes miss ``X_test`` trained on after a little noise, a rescaling, a rounding or a
change of dtype.  The kernel exports every training input through one fixed random 784 -> 64
projection (``kernel.runtime.fingerprints.project_rows``), which keeps distances.  Here the genuine images
are embedded the same way and

    a row is flagged when its nearest test image t is closer than margin * min(h(t), median h),

h(t) being the distance from t to the nearest genuine training image in the same embedding.
A genuine training image is at least h(t) from t by definition, so with margin < 1 training on
``X_train`` (any subset, order or normalisation that the input space explains) is never flagged;
the margin only has to clear augmented training images (``tools/calibrate_contamination.py`` measures
both sides).  Runs in the scoring process only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.neighbors import NearestNeighbors

from ..core.config import Contamination
from .inputs import InputSpace, exact_test_rows
from ..kernel.runtime.fingerprints import project_rows, spectrum_rows
from ..kernel.runtime.format import PROJECTION, PROJECTION_PREFIX, ROW_HASHES, SPECTRUM_PREFIX
from ..core.mnist_data import Mnist

MATCH_DIMS = 4            # a k-d tree finds an identical row fast in a few projected dimensions
MATCH_TOLERANCE = 1e-3    # "identical", relative to the spread of the embedded images
CHUNK = 10000             # rows mapped into a space at a time (bounded float64 temporaries)
CAP_STRIDE = 10           # the median of h(t) is estimated on every tenth test image
PREFILTER_DIMS = 16       # the first coordinates of an embedding, searched first when many rows are
PREFILTER_ROWS = 2000     # ... to be searched
KEPT_SPACES = 4           # per-pixel spaces kept in memory, besides the shared raw and scale-free ones


class _Reference:
    """The genuine training and test images in one embedding, and the honest baseline h(t)."""

    def __init__(self, train: np.ndarray, test: np.ndarray, genuine_tests: int | None = None):
        self.train, self.test = train, test
        self.genuine_tests = len(test) if genuine_tests is None else genuine_tests   # the rest: moved copies
        spread = float(np.median(np.linalg.norm(test - test.mean(axis=0), axis=1)))
        self.tolerance = MATCH_TOLERANCE * spread
        self._lookup = NearestNeighbors(n_neighbors=1, algorithm="kd_tree").fit(train[:, :MATCH_DIMS])
        self._tests = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(test)
        self._trains = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(train)
        self._honest = np.full(len(test), np.nan, dtype=np.float32)
        self._cap: float | None = None
        self._prefilter: NearestNeighbors | None = None

    def genuine(self, rows: np.ndarray) -> np.ndarray:
        """Rows that are genuine training images: they need no search (and most rows are)."""
        _, idx = self._lookup.kneighbors(rows[:, :MATCH_DIMS])
        return np.linalg.norm(rows - self.train[idx[:, 0]], axis=1) <= self.tolerance

    def honest(self, tests: np.ndarray) -> np.ndarray:
        """h(t) for these test images, computed on first need: a clean submission never pays for it."""
        missing = np.unique(tests[np.isnan(self._honest[tests])])
        if missing.size:
            self._honest[missing] = self._trains.kneighbors(self.test[missing])[0][:, 0]
        return self._honest[tests]

    def baseline(self, tests: np.ndarray) -> np.ndarray:
        """min(h(t), median h): an isolated test image (ink where training images have little, which
        per-pixel standardisation magnifies) has a large h(t) that a shifted training image can undercut."""
        return np.minimum(self.honest(tests), self.cap())

    def cap(self) -> float:
        """The median of h over the test images as they are (every CAP_STRIDE-th), not their moved copies."""
        if self._cap is None:
            self._cap = float(np.median(self.honest(np.arange(0, self.genuine_tests, CAP_STRIDE))))
        return self._cap

    def flagged(self, rows: np.ndarray, margin: float) -> np.ndarray:
        """Rows nearer a test image than ``margin`` times its baseline: the mask nearest()'s distances and
        baselines give, with less work.  No baseline exceeds the cap, so a row at margin x cap or more from
        every test image is not flagged: rows are first measured on the embedding's first PREFILTER_DIMS
        coordinates, a distance never above the whole one (a quarter of the work; about one honest
        augmented row in seven goes on), and h(t) is computed only where it matters."""
        limit = margin * self.cap()
        out = np.zeros(len(rows), dtype=bool)
        todo = np.flatnonzero(np.all(np.isfinite(rows), axis=1))
        if todo.size:
            todo = todo[~self.genuine(rows[todo])]
        if todo.size > PREFILTER_ROWS:
            if self._prefilter is None:
                self._prefilter = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(self.test[:, :PREFILTER_DIMS])
            near, _ = self._prefilter.kneighbors(rows[todo, :PREFILTER_DIMS])
            todo = todo[near[:, 0] < limit]
        if todo.size:
            dist, index = (a[:, 0] for a in self._tests.kneighbors(rows[todo]))
            within = dist < limit
            out[todo[within]] = dist[within] < margin * self.baseline(index[within])
        return out

    def nearest(self, rows: np.ndarray, baselines: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: distance to the nearest test image, that image's baseline (inf unless ``baselines``), and
        its index; inf where the row is a genuine training image or not finite."""
        dist = np.full(len(rows), np.inf, dtype=np.float32)
        honest = np.full(len(rows), np.inf, dtype=np.float32)
        index = np.full(len(rows), -1)
        todo = np.flatnonzero(np.all(np.isfinite(rows), axis=1))
        if todo.size:
            todo = todo[~self.genuine(rows[todo])]
        if todo.size:
            d, i = self._tests.kneighbors(rows[todo])
            dist[todo], index[todo] = d[:, 0], i[:, 0]
            if baselines:
                honest[todo] = self.baseline(i[:, 0])
        return dist, honest, index


@dataclass
class _Cache:
    """What one scoring process keeps between calls: the four questions usually share a space."""
    mnist: Mnist | None = None
    references: dict = field(default_factory=dict)   # embedding key -> _Reference
    results: dict = field(default_factory=dict)      # (space key, margin, rows digest) -> mask
    moved_tests: np.ndarray | None = None            # the test images moved (_moved), raw

    def reference(self, mnist: Mnist, key: tuple, build: Callable[[], tuple[np.ndarray, np.ndarray]]) -> _Reference:
        if self.mnist is not mnist:
            self.mnist, self.references, self.results, self.moved_tests = mnist, {}, {}, None
        if key not in self.references:
            spaces = [k for k in self.references if k[0] == "space"]
            if key[0] == "space" and len(spaces) >= KEPT_SPACES:
                del self.references[spaces[0]]
            self.references[key] = _Reference(*build())    # (train, test[, how many of test are genuine])
        return self.references[key]


_cache = _Cache()


def _projected(images: np.ndarray, space: InputSpace | None = None) -> np.ndarray:
    parts = [images[i:i + CHUNK] for i in range(0, len(images), CHUNK)]
    return np.concatenate([project_rows(space.apply(p) if space else p) for p in parts])


def _direction(rows: np.ndarray) -> np.ndarray:
    """Scale-free embedding: any a * x + b of an image lands on the same unit vector (a > 0),
    because the projected offset b is along one fixed direction, removed here."""
    ones = project_rows(np.ones((1, 784), dtype=np.float32))[0]
    ones /= np.linalg.norm(ones)
    flat = rows - np.outer(rows @ ones, ones)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)


def _uniform_scale(space: InputSpace) -> float | None:
    """The common scale a when the space is a * x + b on every varying pixel (x/255, x*2-1, global
    standardisation): distances are then a times raw distances and one raw reference serves all."""
    scale = np.asarray(space.scale, dtype=np.float64).ravel()
    varying = scale[scale != 0]
    if varying.size and np.allclose(varying, varying[0], rtol=1e-5, atol=0):
        return float(varying[0])
    return None


def _space_key(space: InputSpace | None) -> str | None:
    if space is None:
        return None
    data = np.asarray(space.scale).tobytes() + np.asarray(space.offset).tobytes() + space.dtype.encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _embedded(projected: np.ndarray, space: InputSpace | None, mnist: Mnist) -> tuple[np.ndarray, _Reference, float]:
    """The rows and the genuine images in one embedding, and the factor from it to the student's units."""
    rows = np.asarray(projected, dtype=np.float32)
    if space is None:
        return _direction(rows), _direction_reference(mnist), 1.0
    a = _uniform_scale(space)
    if a is not None:
        # Back to raw pixels; the offset of a pixel constant in the genuine images is its value
        # there, MNIST's background 0, so subtracting it is exact.
        offset = project_rows(np.asarray(space.offset, dtype=np.float64).reshape(1, -1))[0]
        return (rows - offset) / np.float32(a), _raw_reference(mnist), abs(a)
    ref = _cache.reference(mnist, ("space", _space_key(space)),
                           lambda: (_projected(mnist.x_train, space), _projected(mnist.x_test, space)))
    return rows, ref, 1.0


def _direction_reference(mnist: Mnist) -> _Reference:
    return _cache.reference(mnist, ("direction",), lambda: (_direction(_projected(mnist.x_train)),
                                                            _direction(_projected(mnist.x_test))))


def _raw_reference(mnist: Mnist) -> _Reference:
    return _cache.reference(mnist, ("raw",), lambda: (_projected(mnist.x_train), _projected(mnist.x_test)))


def prepare(mnist: Mnist) -> None:
    """Build, once, the references that do not depend on a submission (raw pixels and scale-free, projections
    and spectra): a warm scoring process builds them before it forks the children that score submissions,
    which inherit them instead of building them each."""
    for reference in (_raw_reference, _direction_reference, _spectrum_raw_reference, _spectrum_direction_reference):
        reference(mnist)


def nearest_test_distances(projected: np.ndarray, space: InputSpace | None,
                           mnist: Mnist) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, in the student's units (scale-free when ``space`` is None): the distance to the
    nearest test image, that image's baseline min(h(t), median h), and its index (-1 and inf
    distances: a genuine training row, or not finite)."""
    rows, ref, unit = _embedded(projected, space, mnist)
    dist, honest, index = ref.nearest(rows)
    return dist * unit, honest * unit, index


def near_test_rows(projected: np.ndarray, space: InputSpace | None, mnist: Mnist,
                   settings: Contamination) -> np.ndarray:
    """Boolean mask: rows closer to a test image than ``settings.margin`` times its baseline.

    ``projected``: the fit's ``projection_<sha256>`` array from inputs.npz (one row per training
    row, validation rows included).  ``space``: the question's input space; None when no space
    could be fitted, then the scale-free embedding (any global a * x + b, not per-pixel maps)."""
    rows = np.ascontiguousarray(projected)
    key = (_space_key(space), settings.margin, hashlib.blake2b(rows.tobytes(), digest_size=16).hexdigest())
    if _cache.mnist is not mnist or key not in _cache.results:
        embedded, ref, _ = _embedded(rows, space, mnist)
        _cache.results[key] = ref.flagged(embedded, settings.margin)
    return _cache.results[key].copy()


# --- Test images moved a little: the same rule on the rows' spectra (kernel.runtime.fingerprints.spectrum_rows) ---
# A spectrum ignores shifts (and a half turn); a flip mirrors it and small turns and zooms change it a little,
# so the test images are also compared in those forms.  Shifted genuine training images have a genuine
# image's spectrum and are never searched.
TURNS = (-10, -5, 5, 10)          # degrees
ZOOMS = (0.9, 0.95, 1.05, 1.1)


def _moved(images: np.ndarray) -> np.ndarray:
    """``images`` (raw, n x 28 x 28) turned and zoomed about their centre, as a student's augmentation does."""
    from scipy import ndimage

    x = images.reshape(-1, 28, 28).astype(np.float32)
    turned = [np.clip(ndimage.rotate(x, a, axes=(1, 2), reshape=False, order=1), 0, 255) for a in TURNS]
    zoomed = [ndimage.affine_transform(x, [1, 1 / z, 1 / z], offset=[0, 13.5 - 13.5 / z, 13.5 - 13.5 / z], order=1)
              for z in ZOOMS]
    # A left-right flip keeps the spectrum's magnitudes mirrored, not equal (an up-down flip gives the same).
    return np.concatenate([x, x[:, :, ::-1], *turned, *zoomed])


def _spectra(images: np.ndarray, space: InputSpace | None = None) -> np.ndarray:
    parts = [images[i:i + CHUNK] for i in range(0, len(images), CHUNK)]
    return np.concatenate([spectrum_rows(space.apply(p) if space else p) for p in parts])


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def _spectrum_embedded(spectra: np.ndarray, space: InputSpace | None, mnist: Mnist) -> tuple[np.ndarray, _Reference, float]:
    """Like _embedded, for spectra: a space a * x + b with one a and one b for every pixel scales them by |a|
    (b only moves the constant term, which they leave out); any other space is embedded as it is."""
    rows = np.asarray(spectra, dtype=np.float32)
    if space is None:
        return _unit_rows(rows), _spectrum_direction_reference(mnist), 1.0
    a, offset = _uniform_scale(space), np.asarray(space.offset, dtype=np.float64).ravel()
    if a is not None and np.allclose(offset, offset[0], rtol=0, atol=1e-9 * max(1.0, abs(offset[0]))):
        return rows / np.float32(abs(a)), _spectrum_raw_reference(mnist), abs(a)
    ref = _cache.reference(mnist, ("space", "spectrum", _space_key(space)), lambda: (
        _spectra(mnist.x_train, space), _spectra(_kept_moved_tests(mnist), space), len(mnist.x_test)))
    return rows, ref, 1.0


def _spectrum_direction_reference(mnist: Mnist) -> _Reference:
    return _cache.reference(mnist, ("spectrum direction",), lambda: (
        _unit_rows(_spectra(mnist.x_train)), _unit_rows(_spectra(_kept_moved_tests(mnist))), len(mnist.x_test)))


def _spectrum_raw_reference(mnist: Mnist) -> _Reference:
    return _cache.reference(mnist, ("spectrum raw",), lambda: (
        _spectra(mnist.x_train), _spectra(_kept_moved_tests(mnist)), len(mnist.x_test)))


def _kept_moved_tests(mnist: Mnist) -> np.ndarray:
    if _cache.mnist is not mnist or _cache.moved_tests is None:
        _cache.moved_tests = _moved(mnist.x_test)
    return _cache.moved_tests


def near_moved_test_rows(spectra: np.ndarray, space: InputSpace | None, mnist: Mnist,
                         settings: Contamination) -> np.ndarray:
    """Boolean mask: rows whose spectrum is closer to a test image's (shifted, flipped, or in some small turn
    or zoom) than ``settings.spectrum_margin`` times that image's baseline in the same embedding."""
    key = ("spectrum", _space_key(space), settings.spectrum_margin,
           hashlib.blake2b(np.ascontiguousarray(spectra).tobytes(), digest_size=16).hexdigest())
    if _cache.mnist is not mnist or key not in _cache.results:
        rows, ref, _ = _spectrum_embedded(spectra, space, mnist)
        _cache.results[key] = ref.flagged(rows, settings.spectrum_margin)
    return _cache.results[key].copy()


def contaminated_row_count(call: dict, inputs: dict[str, np.ndarray], space: InputSpace | None, mnist: Mnist, *,
                           settings: Contamination, test_hashes: set[str]) -> int:
    """Rows a recorded fit call trained on that are test images: byte for byte (row hashes), or
    near-duplicates (projection) once there are ``settings.min_rows`` of them; validation rows excluded."""
    exact = exact_test_rows(call, test_hashes)
    near = np.zeros_like(exact)
    projected = inputs.get(f"{PROJECTION_PREFIX}{call.get(PROJECTION)}")
    if projected is not None and len(projected) == len(call.get(ROW_HASHES) or []):
        near = near_test_rows(projected, space, mnist, settings)[:len(exact)]
    spectra = inputs.get(f"{SPECTRUM_PREFIX}{call.get(PROJECTION)}")
    if spectra is not None and len(spectra) == len(call.get(ROW_HASHES) or []) and not np.all(exact | near):
        near |= near_moved_test_rows(spectra, space, mnist, settings)[:len(exact)]
    # One odd augmented image must not fail a student; disguised test images matter by thousands.
    return int(np.sum(exact | near)) if np.sum(near & ~exact) >= settings.min_rows else int(np.sum(exact))
