"""Near-duplicates of test images among training rows: real MNIST, the kernel's real projection."""

import math

import numpy as np
import pytest

from autograder.core.config import Contamination, load_config
from autograder.rubric.contamination import contaminated_row_count, near_moved_test_rows, near_test_rows
from tools.calibrate_contamination import augment, disguise, moved_tests, student_spaces
from autograder.rubric.inputs import fit_input_space, trained_rows
from autograder.kernel.runtime.fingerprints import project_rows, row_hashes, spectrum_rows
from autograder.core.mnist_data import load_mnist

SETTINGS = load_config().contamination
SAMPLE = 1000      # test images disguised, training images augmented: keeps the module near 30 s
UNIFORM = ("raw", "x/255", "x/127.5-1 (float32)", "(x-mean)/std global")
PER_PIXEL = "StandardScaler per pixel"


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def students(mnist):
    return student_spaces(mnist)


@pytest.fixture(scope="module")
def augmented(mnist):
    return augment(mnist.x_train[np.random.default_rng(1).permutation(len(mnist.x_train))[:SAMPLE]],
                   np.random.default_rng(2))


def flagged(rows, space, mnist):
    return int(near_test_rows(project_rows(np.asarray(rows)), space, mnist, SETTINGS).sum())


def space_of(student, mnist, fitted=True):
    return fit_input_space(student(mnist.x_test), mnist.x_test) if fitted else None


@pytest.mark.parametrize("name, fitted", [(n, True) for n in UNIFORM + (PER_PIXEL,)] + [("x/255", False)])
def test_honest_training_rows_are_never_flagged(mnist, students, augmented, name, fitted):
    student = students[name]
    space = space_of(student, mnist, fitted)
    assert fitted == (space is not None)
    shuffled = np.random.default_rng(3).permutation(len(mnist.x_train))[:10000]
    assert flagged(student(mnist.x_train), space, mnist) == 0
    assert flagged(student(mnist.x_train[shuffled]), space, mnist) == 0
    for form, images in augmented.items():
        assert flagged(student(images), space, mnist) == 0, form


UNIFORM_FORMS = {"noise 2 grey levels": 0.99, "noise 5 grey, clipped uint8": 0.99, "noise 1% of range": 0.99,
                 "noise 2% of range": 0.95, "x 0.98": 1, "x 1.02": 1, "np.round(X/255, 2)": 1,
                 "float16 round trip": 1, "float32": 1}
# Per-pixel standardisation magnifies rare pixels: noise added before it is out of reach.
PER_PIXEL_FORMS = {"noise 1% of range": 0.99, "x 1.02": 0.99, "np.round(X/255, 2)": 0.99, "float16 round trip": 1}


@pytest.mark.parametrize("name, fitted, forms", [
    ("raw", True, UNIFORM_FORMS), ("x/255", True, UNIFORM_FORMS), ("x/255", False, UNIFORM_FORMS),
    ("(x-mean)/std global", True, {k: UNIFORM_FORMS[k] for k in ("noise 1% of range", "x 1.02", "float16 round trip")}),
    (PER_PIXEL, True, PER_PIXEL_FORMS),
])
def test_disguised_test_images_are_flagged(mnist, students, name, fitted, forms):
    student = students[name]
    space = space_of(student, mnist, fitted)
    disguised = disguise(mnist.x_test[:SAMPLE], student, np.random.default_rng(4))
    for form, at_least in forms.items():
        assert flagged(disguised[form], space, mnist) >= math.ceil(at_least * SAMPLE), form


def test_trained_rows_follows_keras_validation_split():
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split

    for n, split in [(60000, 0.1), (60000, 0.2), (70000, 1 / 7), (1001, 0.3), (10, 0.33)]:
        kept, _ = train_validation_split((np.zeros(n),), validation_split=split)
        assert trained_rows(n, split) == len(kept[0]), (n, split)
    assert trained_rows(60000, 0.0) == trained_rows(60000, None) == 60000
    assert trained_rows(60000, 0.2, has_validation_data=True) == 60000   # Keras then ignores the split


def test_count_combines_exact_and_near_copies_of_trained_rows_only(mnist):
    rng = np.random.default_rng(5)
    x_train, x_test = mnist.x_train[:4000] / 255.0, mnist.x_test[:1000] / 255.0
    space = fit_input_space(mnist.x_test / 255.0, mnist.x_test)
    test_hashes = set(row_hashes(mnist.x_test / 255.0))

    def count(x, **fit):
        inputs = {"projection_k": project_rows(x)}
        call = {"row_hashes": row_hashes(x), "projection": "k", **fit}
        return contaminated_row_count(call, inputs, space, mnist, settings=SETTINGS, test_hashes=test_hashes)

    noisy = x_test + rng.normal(0, 0.01, x_test.shape)
    assert count(x_train) == 0
    assert count(np.concatenate([x_train, noisy])) == 1000
    assert count(np.concatenate([x_train, x_test[:3], noisy])) == 1003
    # Keras holds out the last fifth: the test images there were never trained on.
    assert count(np.concatenate([x_train, noisy]), validation_split=0.2) == 0
    assert count(np.concatenate([x_train, noisy]), validation_split=0.2, has_validation_data=True) == 1000
    # A handful of near-duplicates is no contamination; exact copies always are.
    assert count(np.concatenate([x_train, noisy[:SETTINGS.min_rows - 1]])) == 0
    assert count(np.concatenate([x_train, x_test[:2]])) == 2


def test_settings_default_is_grading_toml():
    assert Contamination() == SETTINGS
    assert 0 < SETTINGS.margin < 1


def flagged_moved(rows, space, mnist):
    return int(near_moved_test_rows(spectrum_rows(np.asarray(rows)), space, mnist, SETTINGS).sum())


@pytest.mark.parametrize("name", ["raw", "x/255"])
def test_test_images_moved_a_little_are_found_and_augmented_training_images_are_not(mnist, students, augmented,
                                                                                    name):
    student = students[name]
    space = space_of(student, mnist)
    for form, images in augmented.items():
        assert flagged_moved(student(images), space, mnist) == 0, form
    moved = moved_tests(mnist.x_test[:SAMPLE], np.random.default_rng(5))
    for form, at_least in {"np.roll 1 px": 1, "shifted 2 px down-right": 0.85, "flipped left-right": 0.99,
                           "zoomed 1.05": 0.99, "rotated 7 deg": 0.02}.items():
        assert flagged_moved(student(moved[form]), space, mnist) >= math.ceil(at_least * SAMPLE), form
