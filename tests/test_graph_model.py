"""Models whose Python is the notebook's, graded from the SavedModel their kernel exported: structure read
from the traced graph, predictions from graph operations only, anything but pure tensor operations refused."""

import numpy as np
import pytest

from autograder.rubric.graph_model import GraphLayer, UnsafeModel, load_graph_model


def test_a_subclassed_model_is_read_from_its_traced_graph(tmp_path):
    import keras

    class Reseau(keras.Model):
        def __init__(self):
            super().__init__()
            self.bn, self.hidden = keras.layers.BatchNormalization(), keras.layers.Dense(32)
            self.out = keras.layers.Dense(10, activation="softmax")

        def call(self, x, training=False):
            return self.out(keras.ops.tanh(self.hidden(self.bn(x, training=training))))

    model = Reseau()
    x = np.random.default_rng(0).random((64, 784), dtype=np.float32)
    model(x)
    model.export(str(tmp_path / "saved"), verbose=False)
    (layers, units), graph = load_graph_model(tmp_path / "saved")
    assert layers == [GraphLayer("BatchNormalization", features=784), GraphLayer("Dense", 32, "linear", 784),
                      GraphLayer("Activation", None, "tanh"), GraphLayer("Dense", 10, "softmax", 32)]
    assert units == 10
    np.testing.assert_allclose(graph.predict(x, batch_size=10), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_a_graph_that_touches_files_is_refused_before_it_is_loaded(tmp_path):
    import tensorflow as tf

    target = tmp_path / "written.txt"

    class Spy(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, 784), tf.float32)])
        def serve(self, x):
            tf.io.write_file(str(target), tf.strings.as_string(tf.reduce_sum(x)))
            return {"output_0": tf.nn.softmax(x[:, :10])}

    spy = Spy()
    tf.saved_model.save(spy, str(tmp_path / "saved"), signatures={"serving_default": spy.serve})
    assert not target.exists()
    with pytest.raises(UnsafeModel, match="opérations que le correcteur n'exécute pas par sécurité.*WriteFile"):
        load_graph_model(tmp_path / "saved")
    assert not target.exists()
