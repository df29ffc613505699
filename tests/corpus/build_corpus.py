"""Build the grading corpus from the released student notebook.

Each submission is the template with its question cells filled in (and sometimes its
cells or metadata reshaped), as a student would hand it in.  EXPECTED lists, for
each one, the checks that must fail; every other check must pass.

    .venv/bin/python tests/corpus/build_corpus.py    # rewrites tests/corpus/*.ipynb
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
TEMPLATE = ROOT / "student_template" / "keras_mnist.ipynb"
ALL_CHECKS = ["q1.1", "q1.2", "q1.3", "q1.4", "q2.1", "q2.2", "q2.3", "q2.4", "q3.1", "q3.2",
              "q4.1", "q4.2", "q4.3", "q4.4"]

Q1 = """\
# Compilation du modèle pour le préparer à l'entrainement
model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])

# Entrainer le réseau
model.fit(X_train, y_train)

# Prédire les sorties
y_pred = model.predict(X_test)

# Afficher les prédictions
print("Prédictions :")
print(y_pred[:3])

# Calculer la précision (évaluer les métriques)
accuracy = model.evaluate(X_test, y_test)[1]
print("Précision : %.2f" % accuracy)
"""

Q2_BODY = """\
# Compiler le modèle
model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])

# # Entrainer le réseau
model.fit(X_train, y_train)

# # Evaluer le réseau
accuracy = model.evaluate(X_test, y_test)[1]
print("Précision : %.2f" % accuracy)
"""


def q2(layers: str) -> str:
    return "# Création du modèle séquentiel\nmodel = keras.models.Sequential()\n\n" + layers + "\n" + Q2_BODY


Q2 = q2("model.add(keras.layers.BatchNormalization(input_shape=(784,)))\n"
        "model.add(keras.layers.Dense(10, activation='softmax'))\n")


def q3(fit: str) -> str:
    return (f"# Entrainer le réseau avec 5 époques\n{fit}\n\n# Calculer la précision\n"
            "accuracy = model.evaluate(X_test, y_test)[1]\nprint(\"Précision : %.3f\" % accuracy)\n")


Q3 = q3("model.fit(X_train, y_train, batch_size=128, epochs=5)")


def q4(build: str, fit: str = "model.fit(X_train, y_train, batch_size=128, epochs=5)",
       evaluate: str = "accuracy = model.evaluate(X_test, y_test)[1]") -> str:
    return (f"{build}\n\nmodel.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])\n\n"
            f"{fit}\n\n# Evaluer le réseau\n{evaluate}\nprint(\"Précision : %.3f\" % accuracy)\n")


Q4 = q4("model = keras.models.Sequential()\n"
        "model.add(keras.layers.BatchNormalization(input_shape=(784,)))\n"
        "model.add(keras.layers.Dense(128, activation='relu'))\n"
        "model.add(keras.layers.Dense(10, activation='softmax'))")

SOLUTION = {"q1": Q1, "q2": Q2, "q3": Q3, "q4": Q4}
Q123_FAILING = ALL_CHECKS[:10]


def sequential(hidden: str) -> str:
    return ("model = keras.Sequential([\n    keras.layers.BatchNormalization(input_shape=(784,)),\n    "
            f"{hidden}\n    keras.layers.Dense(10, activation='softmax'),\n])")


def dense(activation: str) -> str:
    return sequential(f"keras.layers.Dense(128, activation={activation}),")


def q4_only(build: str, fit: str = "model.fit(X_train, y_train, batch_size=128, epochs=2)", **given) -> dict:
    """Only q4 answered (q1-q3 as released, so they fail at once): a fast notebook for one q4 rule."""
    return {"q1": None, "q2": None, "q3": None, "q4": q4(build, fit=fit, **given)}


TF = "import tensorflow as tf\n\n"
GENERATOR = """\
def lots(x, y, taille=128):
    while True:
        for i in range(0, len(x), taille):
            yield x[i:i + taille], y[i:i + taille]

model.fit(lots(X_train, y_train), steps_per_epoch=469, epochs=5)"""
Q1_Q4_FAILING = ALL_CHECKS[:4] + ALL_CHECKS[10:]
NOISY_TEST = """\
bruit = np.random.default_rng(0).normal(0, 3, X_test.shape)
X_test_bruite = np.clip(X_test + bruit, 0, 255).astype('uint8')
model.fit(np.concatenate([X_train, X_test_bruite]), np.concatenate([y_train, y_test]), batch_size=128, epochs=2)"""
ROUNDED_TEST = """\
X_plus = np.concatenate([X_train / 255, np.round(X_test / 255, 2).astype('float16')])
model.fit(X_plus, np.concatenate([y_train, y_test]), batch_size=128, epochs=2)"""
SHIFTED_TRAIN = """\
decale = np.roll(X_train.reshape(-1, 28, 28), 1, axis=2).reshape(-1, 784)
model.fit(np.concatenate([X_train, decale]), np.concatenate([y_train, y_train]), batch_size=128, epochs=1,
          validation_split=0.1)"""
FROM_GENERATOR = """\
def flux():
    for i in range(0, len(X_train), 128):
        yield X_train[i:i + 128].astype('float32'), y_train[i:i + 128]

signature = (tf.TensorSpec((None, 784), tf.float32), tf.TensorSpec((None, 10), tf.float64))
model.fit(tf.data.Dataset.from_generator(flux, output_signature=signature), epochs=2)"""


# Training outside fit, honestly (full marks): a tf.function GradientTape loop on the compiled optimizer
# (the Keras guide's), and train_on_batch.
LOOP_Q3 = """\
import tensorflow as tf

perte = keras.losses.CategoricalCrossentropy()
lots = tf.data.Dataset.from_tensor_slices((X_train.astype('float32'), y_train)).shuffle(60000, seed=0).batch(128)

@tf.function
def etape(x, y):
    with tf.GradientTape() as tape:
        valeur = perte(y, model(x, training=True))
    gradients = tape.gradient(valeur, model.trainable_weights)
    model.optimizer.apply_gradients(zip(gradients, model.trainable_weights))

for epoque in range(5):
    for x, y in lots:
        etape(x, y)"""
ON_BATCH_Q4 = """\
for epoque in range(2):
    for debut in range(0, len(X_train), 128):
        model.train_on_batch(X_train[debut:debut + 128], y_train[debut:debut + 128])"""

# Training on test images by every other public route: each question's accuracy check fails, flagged.
MRO_FIT_Q1 = Q1 + """
# fit de Keras retrouvé dans la hiérarchie des classes, appelé sur les images de test
fit_keras = next(c.__dict__['fit'] for c in type(model).__mro__ if 'fit' in c.__dict__)
fit_keras(model, X_test, y_test, verbose=0)
"""
TWIN_Q2 = Q2 + """
# un jumeau entraîné sur les images de test, dont les poids sont recopiés
jumeau = keras.models.clone_model(model)
jumeau.compile(optimizer='adam', loss='categorical_crossentropy')
jumeau.fit(X_test, y_test, verbose=0)
model.set_weights(jumeau.get_weights())
"""
TAPE_ON_TEST_Q3 = q3("model.fit(X_train, y_train, batch_size=128, epochs=5)") + """
import tensorflow as tf
optimiseur = keras.optimizers.Adam()
for debut in range(0, len(X_test), 128):
    with tf.GradientTape() as tape:
        sortie = model(X_test[debut:debut + 128], training=True)
        perte = keras.losses.categorical_crossentropy(y_test[debut:debut + 128], sortie)
    optimiseur.apply_gradients(zip(tape.gradient(perte, model.trainable_weights), model.trainable_weights))
"""
ON_BATCH_TEST_Q4 = q4(Q4.split("\n\nmodel.compile")[0]) + """
for debut in range(0, len(X_test), 128):
    model.train_on_batch(X_test[debut:debut + 128], y_test[debut:debut + 128])
"""
# The output layer refitted with NumPy on the test images: the weights change with no recorded training.
NUMPY_ON_TEST = """\
model.fit(X_train, y_train, batch_size=128, epochs=2)
caracteristiques = keras.Model(model.inputs, model.layers[-2].output).predict(X_test, verbose=0)
H = np.c_[caracteristiques, np.ones(len(caracteristiques))]
W = np.linalg.lstsq(H, 10 * y_test, rcond=None)[0]
model.layers[-1].set_weights([W[:-1], W[-1]])"""
SOFTMAX_THEN_BATCHNORM_Q2 = q2("model.add(keras.layers.BatchNormalization(input_shape=(784,)))\n"
                               "model.add(keras.layers.Dense(10, activation='softmax'))\n"
                               "model.add(keras.layers.BatchNormalization())\n")


# Models whose Python is the notebook's, graded from their traced computation (full marks): a keras.Model
# subclass (q4), a custom layer and a Lambda layer in a functional model (q2).
SUBCLASS_Q4 = """\
class Reseau(keras.Model):
    def __init__(self):
        super().__init__()
        self.normalisation = keras.layers.BatchNormalization()
        self.cachee = keras.layers.Dense(128, activation='relu')
        self.sortie = keras.layers.Dense(10, activation='softmax')

    def call(self, x, training=False):
        return self.sortie(self.cachee(self.normalisation(x, training=training)))

model = Reseau()"""
CUSTOM_LAYERS_Q2 = """\
class SortieSoftmax(keras.layers.Layer):
    def __init__(self, unites):
        super().__init__()
        self.dense = keras.layers.Dense(unites)

    def call(self, x):
        return keras.ops.softmax(self.dense(x))

entree = keras.Input(shape=(784,))
x = keras.layers.BatchNormalization()(entree)
x = keras.layers.Lambda(lambda t: t * 1.0)(x)
model = keras.Model(entree, SortieSoftmax(10)(x))
"""


# Test images moved a little before training on them are test images (q4.4 fails); training images turned
# and zoomed a little are an honest augmentation (q2 keeps its points).
TURNED_TRAIN_Q2 = q2("model.add(keras.layers.BatchNormalization(input_shape=(784,)))\n"
                     "model.add(keras.layers.Dense(10, activation='softmax'))\n").replace(
    "model.fit(X_train, y_train)", """\
from scipy import ndimage
images = X_train.reshape(-1, 28, 28).astype('float32')
tournees = ndimage.rotate(images[:20000], 8, axes=(1, 2), reshape=False, order=1).reshape(-1, 784)
zoomees = ndimage.zoom(images[20000:40000], (1, 1.1, 1.1), order=1)[:, 1:29, 1:29].reshape(-1, 784)
model.fit(np.concatenate([X_train, tournees, zoomees]), np.concatenate([y_train, y_train[:40000]]))""")
MOVED_TEST = """\
images = X_test.reshape(-1, 28, 28)
deplacees = np.concatenate([np.roll(images[:5000], 1, axis=2), images[5000:, :, ::-1]]).reshape(-1, 784)
model.fit(np.concatenate([X_train, deplacees]), np.concatenate([y_train, y_test]), batch_size=128, epochs=2)"""


def q23_only(q3_source: str) -> dict:
    """q2 and q3 answered (q3 trains q2's model), q1 and q4 as released: fast notebooks for one q3 rule."""
    return {"q1": None, "q3": q3_source, "q4": None}


EXPLORE_Q1 = """\
# Essai : un autre modèle, affecté à la même variable
model = keras.models.Sequential([keras.layers.Dense(10, activation='sigmoid', input_shape=(784,))])
model.compile(optimizer='sgd', loss='mse')
model.fit(X_train[:500], y_train[:500])
"""

EXPLORE_Q3 = """\
# Essai : un modèle plus petit, sur moins de données
essai = keras.models.Sequential([keras.layers.Dense(10, activation='softmax', input_shape=(784,))])
essai.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
essai.fit(X_train[:1000], y_train[:1000])
print(essai.evaluate(X_test, y_test))
"""

# name -> (question sources replacing the solution's, checks expected to fail, options)
CASES: dict[str, tuple[dict, list[str], dict]] = {
    "solution": ({}, [], {}),
    "template": (None, ALL_CHECKS, {}),
    "sigmoid_output": ({"q2": q2("model.add(keras.layers.BatchNormalization(input_shape=(784,)))\n"
                                 "model.add(keras.layers.Dense(10, activation='sigmoid'))\n")}, ["q2.2"], {}),
    # Normalises, but with another layer than the BatchNormalization the question asks for.
    "no_batchnorm": ({"q2": q2("model.add(keras.layers.Rescaling(1 / 255, input_shape=(784,)))\n"
                               "model.add(keras.layers.Dense(10, activation='softmax'))\n")}, ["q2.1"], {}),
    "batch_64": ({"q3": q3("model.fit(X_train, y_train, batch_size=64, epochs=5)")}, ["q3.1"], {}),
    "epochs_3": ({"q3": q3("model.fit(X_train, y_train, batch_size=128, epochs=3)")}, ["q3.1"], {}),
    "no_hidden_layer": ({"q4": q4("model = keras.models.Sequential()\n"
                                  "model.add(keras.layers.BatchNormalization(input_shape=(784,)))\n"
                                  "model.add(keras.layers.Dense(10, activation='softmax'))")},
                        ["q4.1", "q4.4"], {}),
    "trained_on_test": ({"q4": q4(Q4.split("\n\nmodel.compile")[0],
                                  fit="model.fit(np.concatenate([X_train, X_test]), np.concatenate([y_train, y_test]),"
                                      " batch_size=128, epochs=5)")}, ["q4.4"], {}),
    "undertrained": ({"q4": q4(Q4.split("\n\nmodel.compile")[0],
                               fit="model.fit(X_train[:300], y_train[:300], batch_size=128, epochs=1)")},
                     ["q4.4"], {}),
    # Legitimate variants: full marks.
    "variant_list_input_activation": ({
        "q2": "model = keras.Sequential([\n    keras.Input(shape=(784,)),\n    keras.layers.BatchNormalization(),\n"
              "    keras.layers.Dense(10),\n    keras.layers.Activation('softmax'),\n])\n\n" + Q2_BODY,
        "q4": q4("model = keras.Sequential([\n    keras.layers.BatchNormalization(input_shape=(784,)),\n"
                 "    keras.layers.Dense(256, activation='sigmoid'),\n    keras.layers.Dropout(0.1),\n"
                 "    keras.layers.Dense(10, activation=keras.activations.softmax),\n])"),
    }, [], {}),
    "variant_positional_functional": ({
        "q3": "taille_batch = np.int64(128)\nnb_epoques = 5\n" + q3("model.fit(X_train, y_train, taille_batch, nb_epoques)"),
        "q4": q4("inputs = keras.Input(shape=(784,))\nx = keras.layers.BatchNormalization()(inputs)\n"
                 "x = keras.layers.Dense(64)(x)\nx = keras.layers.Activation('relu')(x)\n"
                 "x = keras.layers.Dense(10)(x)\noutputs = keras.layers.Softmax()(x)\n"
                 "model = keras.Model(inputs, outputs)"),
    }, [], {"tamper_given_cell": True}),
    "variant_tf_keras_scaled_stripped": ({
        "q4": "from tensorflow import keras as tfk\n\nX_train_s, X_test_s = X_train / 255.0, X_test / 255.0\n" + q4(
            "reseau = tfk.Sequential()\nreseau.add(tfk.layers.Dense(128, activation='relu', input_shape=(784,)))\n"
            "reseau.add(tfk.layers.Dense(10, activation='softmax'))\nmodel = reseau",
            fit="reseau.fit(X_train_s, y_train, epochs=5, batch_size=128)",
            evaluate="accuracy = reseau.evaluate(X_test_s, y_test)[1]").replace("model.compile", "reseau.compile"),
    }, [], {"strip_metadata": True, "split_q4_cell": True, "add_cells": [("q3", EXPLORE_Q3)]}),
    "variant_subclassed": ({"q2": CUSTOM_LAYERS_Q2 + Q2_BODY, "q4": q4(SUBCLASS_Q4)}, [], {}),
    # Exploratory cells added after a question: the question is graded on its own cell's model.
    "exploratory_cells": ({}, [], {"add_cells": [("q1", EXPLORE_Q1), ("q3", EXPLORE_Q3)]}),
    # The seed's advice (relu or sigmoid) is not the rubric: any non-linearity counts (q4 only, 2 epochs).
    "q4_tanh": (q4_only(dense("'tanh'")), Q123_FAILING, {}),
    "q4_tf_function_and_leaky_layer": (q4_only(
        "import tensorflow as tf\n" + sequential("keras.layers.Dense(128, activation=tf.nn.swish),\n"
                                                  "    keras.layers.Dense(64),\n    keras.layers.LeakyReLU(),")),
        Q123_FAILING, {}),
    "q4_linear_stack": (q4_only(sequential("keras.layers.Dense(128),\n    keras.layers.Dense(64, activation='linear'),")),
                        Q123_FAILING + ["q4.1", "q4.4"], {}),
    # Data that Keras iterates itself: the batch size and the samples are read from the data.
    "data_tf_dataset": (q23_only(TF + q3("train_ds = tf.data.Dataset.from_tensor_slices((X_train, y_train))"
                                         ".shuffle(10000).batch(128)\nmodel.fit(train_ds, epochs=5)")),
                        Q1_Q4_FAILING, {}),
    "data_generator": (q23_only(q3(GENERATOR)), Q1_Q4_FAILING, {}),
    # batch_size=128 is ignored by Keras: the dataset's batches of 64 are what it trains on.
    "data_batch_64": (q23_only(TF + q3("model.fit(tf.data.Dataset.from_tensor_slices((X_train, y_train)).batch(64),"
                                       " batch_size=128, epochs=5)")), Q1_Q4_FAILING + ["q3.1"], {}),
    "data_trained_on_test": (q4_only(TF + Q4.split("\n\nmodel.compile")[0],
                                     fit="model.fit(tf.data.Dataset.from_tensor_slices((X_test, y_test)).batch(128), "
                                         "epochs=2)"), Q123_FAILING + ["q4.4"], {}),
    # Test images slightly altered before training on them are still test images (q4.4 fails);
    # augmented copies of the training images are honest (full marks).
    "test_noisy_raw": (q4_only(Q4.split("\n\nmodel.compile")[0], fit=NOISY_TEST), Q123_FAILING + ["q4.4"], {}),
    "test_rounded_float16": (q4_only(Q4.split("\n\nmodel.compile")[0], fit=ROUNDED_TEST,
                                     evaluate="accuracy = model.evaluate(X_test / 255, y_test)[1]"),
                             Q123_FAILING + ["q4.4"], {}),
    "test_moved_beside_turned_training": ({"q1": None, "q2": TURNED_TRAIN_Q2, "q3": None,
                                           "q4": q4(Q4.split("\n\nmodel.compile")[0], fit=MOVED_TEST)},
                                          ALL_CHECKS[:4] + ["q3.1", "q3.2", "q4.4"], {}),
    "honest_shifted_copies": (q4_only(Q4.split("\n\nmodel.compile")[0], fit=SHIFTED_TRAIN), Q123_FAILING, {}),
    "honest_outside_fit": ({"q1": None, "q3": LOOP_Q3, "q4": q4(Q4.split("\n\nmodel.compile")[0], fit=ON_BATCH_Q4)},
                           ALL_CHECKS[:4], {}),
    "trained_on_test_other_routes": ({"q1": MRO_FIT_Q1, "q2": TWIN_Q2, "q3": TAPE_ON_TEST_Q3, "q4": ON_BATCH_TEST_Q4},
                                     ["q1.4", "q2.4", "q3.2", "q4.4"], {}),
    # The output check reads the model's output (q2), and weights changed unseen fail the accuracy check (q4).
    "hostile_unaccounted_weights": ({"q1": None, "q2": SOFTMAX_THEN_BATCHNORM_Q2, "q3": None,
                                     "q4": q4(Q4.split("\n\nmodel.compile")[0], fit=NUMPY_ON_TEST)},
                                    ALL_CHECKS[:4] + ["q2.2", "q2.4", "q3.1", "q3.2", "q4.4"], {}),
    # Data the grader cannot examine: graded on what it can measure, and the note says what it could not check.
    "data_from_generator": (q4_only(TF + Q4.split("\n\nmodel.compile")[0], fit=FROM_GENERATOR), Q123_FAILING, {}),
    # Hostile code: the rest of the notebook is graded normally.
    "infinite_loop_q1": ({"q1": Q1 + "\nwhile True:\n    pass\n"}, ["q1.1", "q1.2", "q1.3", "q1.4"], {}),
    "os_exit_q1": ({"q1": "import os\n" + Q1 + "os._exit(1)\n"}, ["q1.1", "q1.2", "q1.3", "q1.4"], {}),
}

# Hostile code appended to a correct q1 (q2-q4 stay as released, so they run fast).
HOSTILE = {
    "memory_bomb": ("blocs = []\nwhile True:\n    blocs.append(b'x' * 2**28)\n", ["q1.1", "q1.2", "q1.3", "q1.4"]),
    "fork_bomb": ("import os, time\nfor _ in range(500):\n    if os.fork() == 0:\n        time.sleep(600)\n"
                  "        os._exit(0)\n", ["q1.1", "q1.2", "q1.3", "q1.4"]),
    "sys_exit": ("import sys\nsys.exit(0)\n", []),
    "raise_system_exit": ("raise SystemExit(3)\n", []),
    "swallow_interrupts": ("import time\nwhile True:\n    try:\n        time.sleep(1000)\n"
                           "    except KeyboardInterrupt:\n        pass\n", ["q1.1", "q1.2", "q1.3", "q1.4"]),
    "print_100mb": ("print('x' * 100_000_000)\n", []),
    "huge_file": ("with open('enorme.bin', 'wb') as f:\n    f.write(b'0' * (2 * 2**30))\n", []),
    "network": ("import socket\ns = socket.socket()\ns.settimeout(5)\n"
                "print('connexion :', s.connect_ex(('151.101.0.223', 443)))\n", []),
    "delete_files": ("import os, shutil\nfor d in (os.getcwd(), os.path.dirname(os.getcwd())):\n"
                     "    for name in os.listdir(d):\n        p = os.path.join(d, name)\n"
                     "        shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.remove(p)\n", []),
    "fake_results": ("import json, os\nfake = {'score': 20, 'tests': []}\n"
                     "for d in (os.getcwd(), os.path.dirname(os.getcwd())):\n"
                     "    for name in ('results.json', 'grades.csv', 'checks.json'):\n"
                     "        with open(os.path.join(d, name), 'w') as f:\n            json.dump(fake, f)\n", []),
}

# Undertrained, then Keras and NumPy patched to report perfect results.
PATCH_KERAS = """\
model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
model.fit(X_train[:20], y_train[:20])
import numpy as np
keras.Model.evaluate = lambda self, *a, **k: [0.0, 1.0]
keras.Model.fit = lambda self, *a, **k: None
_vrai = model.predict
keras.Model.predict = lambda self, x, *a, **k: np.eye(10)[np.zeros(len(x), dtype=int)]
np.argmax = lambda *a, **k: 0
model.fit(X_train, y_train, batch_size=128, epochs=5)
y_pred = model.predict(X_test)
print("Précision :", model.evaluate(X_test, y_test)[1])
"""


def build(name: str, sources: dict | None, options: dict) -> nbformat.NotebookNode:
    nb = nbformat.read(TEMPLATE, as_version=4)
    if sources is not None:
        filled = {**SOLUTION, **sources}
        for cell in nb.cells:
            q = cell.metadata.get("autograder", {}).get("question")
            if q and filled[q] is not None:     # None keeps the released placeholder
                cell.source = filled[q]
    for question, source in options.get("add_cells", []):
        i = next(i for i, c in enumerate(nb.cells) if c.metadata.get("autograder", {}).get("question") == question)
        nb.cells.insert(i + 1, nbformat.v4.new_code_cell(source))
    if options.get("split_q4_cell"):
        i = next(i for i, c in enumerate(nb.cells) if c.metadata.get("autograder", {}).get("question") == "q4")
        head, found, tail = nb.cells[i].source.partition("\nreseau = ")
        assert found, "the q4 variant must contain the split point"
        nb.cells[i].source = head
        nb.cells.insert(i + 1, nbformat.v4.new_code_cell("reseau = " + tail))
    if options.get("tamper_given_cell"):
        # Editing given code must not change the grade: the grader restores it.
        given = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "one-hot")
        given.source += "\nX_train, y_train = X_train[:1000], y_train[:1000]\n"
    if options.get("strip_metadata"):
        nb.metadata = nbformat.NotebookNode({"kernelspec": nb.metadata.get("kernelspec", {})})
        for cell in nb.cells:
            cell.metadata = nbformat.NotebookNode()
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:40]}-{i}"
    return nb


def bad_files() -> dict[str, bytes]:
    """Files that are not gradable notebooks: each must get status invalid_notebook."""
    template = TEMPLATE.read_bytes()
    unconvertible_v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": "x"}]}
    return {
        "empty": b"",
        "not_json": "Voici mon devoir, je n'ai pas réussi à l'exporter.\n".encode(),
        "binary_junk": bytes(range(256)) * 8,
        "truncated": template[: len(template) // 2],
        "json_list": b"[1, 2, 3]",
        "json_without_cells": b'{"metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
        "no_cells": json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode(),
        "nbformat3_unconvertible": json.dumps(unconvertible_v3).encode(),
        "latin1_bytes": template.decode("utf-8").encode("latin-1", errors="replace"),
    }


def main() -> None:
    expected = {}
    for name, (sources, failing, options) in CASES.items():
        nbformat.write(build(name, sources, options), HERE / f"{name}.ipynb")
        expected[name] = {"failing": sorted(failing)}
    for name, (code, failing) in HOSTILE.items():
        nbformat.write(build(name, {"q1": Q1 + "\n" + code, "q2": None, "q3": None, "q4": None}, {}),
                       HERE / f"hostile_{name}.ipynb")
        expected[f"hostile_{name}"] = {"failing": sorted(set(failing) | set(ALL_CHECKS[4:]))}
    nbformat.write(build("patch_keras", {"q1": PATCH_KERAS, "q2": None, "q3": None, "q4": None}, {}),
                   HERE / "hostile_patch_keras.ipynb")
    expected["hostile_patch_keras"] = {"failing": sorted(["q1.1", "q1.2", "q1.4"] + ALL_CHECKS[4:])}
    bad = HERE / "bad_files"
    bad.mkdir(exist_ok=True)
    for name, content in bad_files().items():
        (bad / f"{name}.ipynb").write_bytes(content)
    # Odd but gradable: an old format, duplicated cell ids, a missing exercise cell.
    # (q1 answered, the rest as released: enough to show they are graded, and fast.)
    q1_only = {"q1": Q1, "q2": None, "q3": None, "q4": None}
    v3 = nbformat.convert(build("odd_nbformat3", q1_only, {}), 3)
    (HERE / "odd_nbformat3.ipynb").write_text(nbformat.writes(v3, version=3))
    expected["odd_nbformat3"] = {"failing": ALL_CHECKS[4:], "note": "converti depuis le format nbformat 3"}
    dup = build("odd_duplicate_ids", q1_only, {})
    for cell in dup.cells:
        cell["id"] = "meme-id"
    (HERE / "odd_duplicate_ids.ipynb").write_text(json.dumps(dup, ensure_ascii=False, indent=1))
    expected["odd_duplicate_ids"] = {"failing": ALL_CHECKS[4:], "note": "identifiants de cellules étaient dupliqués"}
    missing = build("odd_missing_q3", {}, {})
    missing.cells = [c for c in missing.cells if c.metadata.get("autograder", {}).get("question") != "q3"]
    nbformat.write(missing, HERE / "odd_missing_q3.ipynb")
    expected["odd_missing_q3"] = {"failing": ["q3.1", "q3.2"], "note": "aucune cellule de la question q3"}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
