"""The runtime's installation, by the hidden preamble before any student code: MNIST served offline,
seeds and thread caps, and the recorder's wrappers in place of Keras' methods."""

import os
import random

import numpy as np

from .acceleration import _wrap_compile
from .recorder import _wrap, _wrap_apply, _wrap_call, _wrap_initialize, _wrap_train_on_batch
from .state import _state


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
