"""Calibrate [contamination] in grading.toml: how far honest training rows (augmented genuine images) and
disguised test images fall from the test images, per input space, by the scoring process's own rule.

    .venv/bin/python tools/calibrate_contamination.py [--rows N] [--draws D] [--spectrum]

--spectrum measures the rule on spectra (test images shifted, flipped, turned, zoomed) instead of the
projection's (test images with noise, rescaled, rounded, recast).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from autograder.core.config import load_config  # noqa: E402
from autograder.core.mnist_data import Mnist, load_mnist  # noqa: E402
from autograder.kernel.runtime.fingerprints import project_rows, spectrum_rows  # noqa: E402
from autograder.rubric.contamination import _embedded, _spectrum_embedded, nearest_test_distances  # noqa: E402
from autograder.rubric.inputs import InputSpace, fit_input_space  # noqa: E402

def student_spaces(mnist: Mnist) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """How students feed pixels to the network, written as they write it."""
    from sklearn.preprocessing import StandardScaler

    mean, std = float(mnist.x_train.mean()), float(mnist.x_train.std())
    scaler = StandardScaler().fit(mnist.x_train.reshape(len(mnist.x_train), -1))
    return {
        "raw": lambda x: x,
        "x/255": lambda x: x / 255.0,
        "x/127.5-1 (float32)": lambda x: (x / 127.5 - 1).astype(np.float32),
        "(x-mean)/std global": lambda x: ((x - mean) / std).astype(np.float32),
        "StandardScaler per pixel": lambda x: scaler.transform(np.asarray(x, dtype=np.float64).reshape(len(x), -1)),
    }


def augment(x: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Honest training images: the usual augmentations of genuine ones (raw pixels, float)."""
    from scipy import ndimage

    x = x.astype(np.float32)
    out = {}
    moves = rng.integers(0, 24, len(x))       # every shift of at most two pixels but none
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if (dy, dx) != (0, 0)]
    shifted = x.copy()
    for k, (dy, dx) in enumerate(shifts):
        shifted[moves == k] = ndimage.shift(x[moves == k], (0, dy, dx), order=0)
    out["shifted 1-2 px"] = shifted
    angles = rng.choice([-10, -7, -5, -3, 3, 5, 7, 10], len(x))
    rotated = x.copy()
    for angle in np.unique(angles):
        rotated[angles == angle] = ndimage.rotate(x[angles == angle], angle, axes=(1, 2), reshape=False, order=1)
    out["rotated 3-10 deg"] = np.clip(rotated, 0, 255)
    zooms = rng.choice([0.9, 0.95, 1.05, 1.1], len(x))
    zoomed = x.copy()
    for z in np.unique(zooms):     # about the centre, as keras.layers.RandomZoom
        zoomed[zooms == z] = ndimage.affine_transform(x[zooms == z], [1, 1 / z, 1 / z],
                                                      offset=[0, 13.5 - 13.5 / z, 13.5 - 13.5 / z], order=1)
    out["zoomed 0.9-1.1"] = zoomed
    out["noise sigma 25 grey"] = x + rng.normal(0, 25.5, x.shape).astype(np.float32)
    erased = x.copy()
    for i, (r, c) in enumerate(rng.integers(0, 21, (len(x), 2))):
        erased[i, r:r + 8, c:c + 8] = 0
    out["random erasing 8x8"] = erased
    out["shift+rotate+noise"] = np.clip(ndimage.shift(rotated, (0, 1, 0), order=0)
                                        + rng.normal(0, 5, x.shape), 0, 255).astype(np.float32)
    return out


def disguise(x_test: np.ndarray, student: Callable[[np.ndarray], np.ndarray],
             rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Test images as a student might disguise them, in the student's units."""
    z = np.asarray(student(x_test))
    unit = 255.0 * float(z.std()) / float(x_test.std())   # the 0-255 range in the student's units
    noisy = lambda sigma: z + rng.normal(0, sigma, z.shape)   # noqa: E731
    return {
        "noise 2 grey levels": student(x_test + rng.normal(0, 2, x_test.shape)),
        "noise 5 grey, clipped uint8": student(np.clip(np.rint(x_test + rng.normal(0, 5, x_test.shape)),
                                                       0, 255).astype(np.uint8)),
        **{f"noise {p}% of range": noisy(p / 100 * unit) for p in (1, 2, 3, 5)},
        "x 0.98": z * 0.98,
        "x 1.02": z * 1.02,
        "np.round(X/255, 2)": student(np.round(x_test / 255, 2) * 255),
        "float16 round trip": z.astype(np.float16).astype(np.float32),
        "float32": z.astype(np.float32),
    }


def moved_tests(x_test: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Test images moved a little before a student trains on them (raw pixels, float)."""
    from scipy import ndimage

    x = x_test.astype(np.float32)
    return {
        "np.roll 1 px": np.roll(x, 1, axis=2),
        "shifted 2 px down-right": ndimage.shift(x, (0, 2, 2), order=0),
        "flipped left-right": x[:, :, ::-1],
        "rotated 7 deg": np.clip(ndimage.rotate(x, 7, axes=(1, 2), reshape=False, order=1), 0, 255),
        "rotated -3 deg": np.clip(ndimage.rotate(x, -3, axes=(1, 2), reshape=False, order=1), 0, 255),
        "zoomed 1.05": ndimage.affine_transform(x, [1, 1 / 1.05, 1 / 1.05], offset=[0, 13.5 - 13.5 / 1.05,
                                                                                13.5 - 13.5 / 1.05], order=1),
        "shifted 1 px + noise 5 grey": np.clip(np.roll(x, 1, axis=1) + rng.normal(0, 5, x.shape), 0, 255),
    }


def _ratios(z: np.ndarray, space: InputSpace | None, mnist: Mnist, spectrum: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Distances to the nearest test image and distance / baseline (inf: a genuine training row)."""
    if spectrum:
        rows, ref, unit = _spectrum_embedded(spectrum_rows(np.asarray(z)), space, mnist)
        dist, base, _ = ref.nearest(rows)
    else:
        dist, base, _ = nearest_test_distances(project_rows(np.asarray(z)), space, mnist)
    return dist, np.divide(dist, base, out=np.full(len(dist), np.inf, dtype=np.float32), where=np.isfinite(dist))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure honest and disguised-test distances per input space.")
    parser.add_argument("--rows", type=int, default=20000, help="training images augmented per draw")
    parser.add_argument("--draws", type=int, default=1, help="independent augmentations of them")
    parser.add_argument("--spectrum", action="store_true", help="the spectra's rule (moved test images) instead")
    args = parser.parse_args(argv)
    settings, started = load_config().contamination, time.perf_counter()
    margin = settings.spectrum_margin if args.spectrum else settings.margin
    mnist = load_mnist()
    spaces = {}
    for name, student in student_spaces(mnist).items():
        spaces[f"{name}, its space"] = (student, fit_input_space(student(mnist.x_test), mnist.x_test))
        if name in ("x/255", "StandardScaler per pixel"):   # the scale-free embedding ignores a and b
            spaces[f"{name}, no space (scale-free)"] = (student, None)
    honest: dict[tuple[str, str], list] = {}
    for draw in range(args.draws):
        rng = np.random.default_rng(draw)
        subset = rng.permutation(len(mnist.x_train))[:args.rows]
        forms = augment(mnist.x_train[subset], rng)
        if draw == 0:
            forms = {"X_train": mnist.x_train, "shuffled half": mnist.x_train[subset[: args.rows // 2]], **forms}
        for label, (student, space) in spaces.items():
            for form, images in forms.items():
                dist, ratio = _ratios(student(images), space, mnist, args.spectrum)
                searched = np.isfinite(dist)
                honest.setdefault((label, form), []).append(
                    (ratio.min(), dist[searched].min(initial=np.inf), np.sum(ratio < margin), len(dist), searched.sum()))
    print(f"ratio = distance to the nearest test image t / min(h(t), median h), h(t): t's distance to the "
          f"nearest genuine training image; flagged below margin = {margin}; augmented forms: "
          f"{args.draws} x {args.rows} training images")
    for label, (student, space) in spaces.items():
        if args.spectrum:
            _, ref, unit = _spectrum_embedded(spectrum_rows(student(mnist.x_test[:1])), space, mnist)
        else:
            _, ref, unit = _embedded(project_rows(student(mnist.x_test[:1])), space, mnist)
        h = ref.honest(np.arange(len(ref.test))) * unit
        print(f"\n== {label}: h(t) min {h.min():.4g}, 0.1% {np.quantile(h, 0.001):.4g}, "
              f"1% {np.quantile(h, 0.01):.4g}, median {np.median(h):.4g}")
        for (where, form), runs in honest.items():
            if where == label:
                low, near, flagged, n, searched = (f(col) for f, col in zip((min, min, sum, sum, sum), zip(*runs)))
                print(f"  honest  {form:28s} min ratio {low:.3f}, min distance {near:.4g}, "
                      f"{searched}/{n} rows searched; flagged {flagged}")
        altered = ({form: student(z) for form, z in moved_tests(mnist.x_test, np.random.default_rng(0)).items()}
                   if args.spectrum else disguise(mnist.x_test, student, np.random.default_rng(0)))
        for form, z in altered.items():
            dist, ratio = _ratios(z, space, mnist, args.spectrum)
            print(f"  altered {form:28s} ratio median {np.median(ratio):.3f}, 99% {np.quantile(ratio, 0.99):.3f}, "
                  f"max {ratio.max():.3f}; distance median {np.median(dist):.4g}; "
                  f"flagged {np.sum(ratio < margin)}/{len(z)}")
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
