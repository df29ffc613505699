"""The scoring process reloads students' models without running their code, whatever activation they chose."""

import pytest

from autograder.rubric import checks
from autograder.rubric.artifacts import QuestionArtifacts, _load_error, describe_model, load_model


def saved(tmp_path, *hidden):
    import keras

    model = keras.Sequential([keras.Input((784,)), keras.layers.BatchNormalization(), *hidden,
                              keras.layers.Dense(10, activation="softmax")])
    path = tmp_path / "model.keras"
    model.save(path)
    return path


def test_activation_given_as_a_tensorflow_function_is_reloaded(tmp_path):
    import keras
    import tensorflow as tf

    path = saved(tmp_path, keras.layers.Dense(32, activation=tf.nn.swish),
                 keras.layers.Dense(32, activation=keras.activations.gelu))
    info = describe_model(load_model(path))
    checks.hidden_dense_layer(QuestionArtifacts("q4", model=info))
    assert [layer.activation for layer in info.layers if layer.class_name == "Dense"][:2] == ["silu", "gelu"]


def notebook_function(x):
    return x * 2


@pytest.mark.parametrize("activation", [lambda x: x * 2, notebook_function])
def test_code_written_in_the_notebook_is_not_run_and_the_student_is_told_why(tmp_path, activation):
    import keras

    path = saved(tmp_path, keras.layers.Dense(32, activation=activation))
    with pytest.raises(Exception) as raised:
        load_model(path)
    message = _load_error(path, raised.value)
    assert "code Python écrit dans le notebook" in message and "LeakyReLU" in message
