"""Calibrate [generalization] in grading.toml: how honest models do on the genuine test images against a
fixed sample of genuine training images, beside models that also trained on test images.

    .venv/bin/python tools/calibrate_generalization.py [--seeds 10] [--out ratios.json]

Trains each form of honest training students use (the notebook's q1-q4 models, subsets, a validation
split, augmented images, longer training) and a few contaminated ones, in this process, and prints the
ratio test loss / training loss that the scoring process measures (rubric/evaluation.py, evaluate).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def forms(keras, x_train, y_train, x_test, y_test):
    """name -> (honest?, build-and-train function of a seed)."""
    def dense(hidden=(), bn=True, lr=None):
        layers = [keras.Input((784,))] + ([keras.layers.BatchNormalization()] if bn else [])
        layers += [keras.layers.Dense(h, activation="relu") for h in hidden]
        model = keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(lr) if lr else "adam", loss="categorical_crossentropy")
        return model

    def shifted(x, rng):
        images = x.reshape(-1, 28, 28)
        out = np.stack([np.roll(np.roll(im, dy, 0), dx, 1) for im, (dy, dx) in
                        zip(images, rng.integers(-2, 3, (len(images), 2)))])
        return out.reshape(len(x), 784)

    def q4(x, y, **fit):
        model = dense((128,))
        model.fit(x, y, batch_size=128, epochs=fit.pop("epochs", 5), verbose=0, **fit)
        return model

    def q3():
        model = dense()
        model.fit(x_train, y_train, verbose=0)
        model.fit(x_train, y_train, batch_size=128, epochs=5, verbose=0)
        return model

    def then_test(model):
        model.fit(x_test, y_test, batch_size=128, epochs=1, verbose=0)
        return model

    rng = np.random.default_rng(0)
    augmented = np.concatenate([x_train, shifted(x_train, rng)])
    return {
        "q1 raw pixels, no normalisation": (True, lambda: _fit(dense(bn=False), x_train, y_train, epochs=1)),
        "q2 batchnorm, 1 epoch": (True, lambda: _fit(dense(), x_train, y_train, epochs=1)),
        "q3 batchnorm, 1 + 5 epochs": (True, q3),
        "q4 one hidden layer": (True, lambda: q4(x_train, y_train)),
        "q4 two hidden layers, 10 epochs": (True, lambda: _fit(dense((256, 128)), x_train, y_train, epochs=10)),
        "q4 X_train[:5000], 10 epochs": (True, lambda: q4(x_train[:5000], y_train[:5000], epochs=10)),
        "q4 X_train[:1000], 20 epochs": (True, lambda: q4(x_train[:1000], y_train[:1000], epochs=20)),
        "q4 validation_split=0.2": (True, lambda: q4(x_train, y_train, validation_split=0.2)),
        "q4 X_train + shifted copies": (True, lambda: q4(augmented, np.concatenate([y_train, y_train]))),
        "q4 x/255, no batchnorm": (True, lambda: _fit(dense((128,), bn=False), x_train / 255, y_train, epochs=5,
                                                       space=255.0)),
        "q4 then 1 epoch on X_test": (False, lambda: then_test(q4(x_train, y_train))),
        "q4 on X_train + X_test": (False, lambda: q4(np.concatenate([x_train, x_test]),
                                                     np.concatenate([y_train, y_test]))),
        "q4 X_train[:5000] then X_test": (False, lambda: then_test(q4(x_train[:5000], y_train[:5000], epochs=10))),
        "q2 then 1 epoch on X_test": (False, lambda: then_test(_fit(dense(), x_train, y_train, epochs=1))),
    }


def _fit(model, x, y, epochs, space=None):
    model.fit(x, y, batch_size=128 if epochs > 1 else 32, epochs=epochs, verbose=0)
    model.scale = space
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--honest-only", action="store_true")
    parser.add_argument("--out", default=None, help="JSON of every measured ratio")
    args = parser.parse_args(argv)
    import keras
    import tensorflow as tf

    from autograder.core.mnist_data import load_mnist
    from autograder.rubric.evaluation import TRAIN_SAMPLE_STRIDE, _mean_loss

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    mnist = load_mnist()
    x_train, x_test = mnist.x_train.reshape(-1, 784).astype("float32"), mnist.x_test.reshape(-1, 784).astype("float32")
    y_train, y_test = keras.utils.to_categorical(mnist.y_train, 10), keras.utils.to_categorical(mnist.y_test, 10)
    sample = x_train[::TRAIN_SAMPLE_STRIDE]
    results: dict[str, list[float]] = {}
    started = time.perf_counter()
    for name, (honest, train) in forms(keras, x_train, y_train, x_test, y_test).items():
        if args.honest_only and not honest:
            continue
        for seed in range(args.seeds if honest else min(args.seeds, 3)):
            keras.utils.set_random_seed(seed)
            model = train()
            scale = getattr(model, "scale", None) or 1.0
            test = model.predict(x_test / scale, batch_size=1000, verbose=0)
            train_probs = model.predict(sample / scale, batch_size=1000, verbose=0)
            ratio = _mean_loss(test, mnist.y_test) / _mean_loss(train_probs, mnist.y_train[::TRAIN_SAMPLE_STRIDE])
            results.setdefault(f"{'honest' if honest else 'CONTAMINATED'}: {name}", []).append(round(ratio, 4))
            print(f"{'honest' if honest else 'CONTAMINATED':12s} {name:36s} seed {seed}: ratio {ratio:.3f}", flush=True)
    print(f"\nratio = mean test loss / mean loss on every {TRAIN_SAMPLE_STRIDE}th training image "
          f"({time.perf_counter() - started:.0f} s)")
    for name, ratios in results.items():
        print(f"{name:50s} min {min(ratios):.3f}  median {statistics.median(ratios):.3f}  max {max(ratios):.3f}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
