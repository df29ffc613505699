"""Evaluation: the captured model on the genuine images, in the student's input space (the test set, and a
fixed sample of the training set for the generalization signal)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.mnist_data import Mnist
from ..kernel.runtime.fingerprints import array_sha256
from .inputs import InputSpace


@dataclass(frozen=True)
class Generalization:
    """How the model does on the genuine test images against genuine training images (a fixed sample),
    measured here: a model trained on test images does better on them than on images it trained on."""
    test_loss: float
    train_loss: float
    test_accuracy: float
    train_accuracy: float

    @property
    def ratio(self) -> float:
        return self.test_loss / self.train_loss if self.train_loss > 0 else float("inf")


class _Kept:
    """What a scoring session keeps from one question to the next, for the one MNIST copy it loaded
    (core.mnist_data.shared_mnist): the questions mostly share one input space and one scaled test set.
    Results of pure functions of the bytes they are keyed on, so a question scores the same either way."""
    LIMIT = 2       # of each kind (key[0]): a scaled test set weighs up to 63 MB

    def __init__(self):
        self.mnist, self.entries = None, {}

    def get(self, mnist: Mnist, key: tuple, compute):
        if self.mnist is not mnist:
            self.mnist, self.entries = mnist, {}
        if key not in self.entries:
            same_kind = [k for k in self.entries if k[0] == key[0]]
            if len(same_kind) >= self.LIMIT:
                del self.entries[same_kind[0]]
            self.entries[key] = compute()
        return self.entries[key]


kept = _Kept()


def digest(arr: np.ndarray) -> tuple:
    return arr.dtype.str, arr.shape, array_sha256(arr)


def _genuine_in(space: InputSpace, mnist: Mnist, kind: str, images: np.ndarray) -> np.ndarray:
    """Genuine images in the student's input space, kept per ``kind`` (read-only: shared between questions)."""
    def mapped():
        x = space.apply(images)
        x.flags.writeable = False
        return x
    key = (kind, digest(np.asarray(space.scale)), digest(np.asarray(space.offset)), space.shape, space.dtype)
    return kept.get(mnist, key, mapped)


def _test_set_in(space: InputSpace, mnist: Mnist) -> np.ndarray:
    return _genuine_in(space, mnist, "test set", mnist.x_test)


TRAIN_SAMPLE_STRIDE = 6     # every sixth genuine training image: 10,000, as many as the test images


def _train_sample_in(space: InputSpace, mnist: Mnist) -> np.ndarray:
    """A fixed sample of the genuine training images in the student's input space."""
    return _genuine_in(space, mnist, "train sample", mnist.x_train[::TRAIN_SAMPLE_STRIDE])


def _probabilities(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=1000, verbose=0)).reshape(len(x), -1)


def _mean_loss(probs: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean cross-entropy, when the outputs are class probabilities (a softmax output); else None."""
    if probs.shape[1] != 10 or not np.all(np.isfinite(probs)) or probs.min() < 0 or \
            not np.allclose(probs.sum(axis=1), 1, atol=1e-3):
        return None
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0))))


def evaluate(model, space: InputSpace, mnist: Mnist) -> tuple[float, Generalization | None, np.ndarray]:
    """Accuracy on the genuine test images, the generalization signal, and each test image's predicted digit."""
    test = _probabilities(model, _test_set_in(space, mnist))
    predicted = np.argmax(test, axis=1)
    accuracy = float(np.mean(predicted == mnist.y_test))
    train_labels = mnist.y_train[::TRAIN_SAMPLE_STRIDE]
    train = _probabilities(model, _train_sample_in(space, mnist))
    test_loss, train_loss = _mean_loss(test, mnist.y_test), _mean_loss(train, train_labels)
    if test_loss is None or train_loss is None:
        return accuracy, None, predicted
    return accuracy, Generalization(round(test_loss, 6), round(train_loss, 6), accuracy,
                                    float(np.mean(np.argmax(train, axis=1) == train_labels))), predicted
