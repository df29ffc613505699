"""The rubric: one plain function per check, plain ``assert`` with a French message.

Each function takes a question's ``QuestionArtifacts`` and its parameters from
grading.toml.  The hidden pytest suite, the student self-check and the otter export
all call these same functions.
"""

from __future__ import annotations

from ..core import messages
from ..core.config import Check
from ..core.results import CheckOutcome
from .artifacts import FitCall, ModelInfo, QuestionArtifacts

TRAIN_SIZE = 60000
TEST_SIZE = 10000
SOFTMAX_LAYERS = {"Softmax"}
PASS_THROUGH = {"Dropout", "ActivityRegularization", "GaussianNoise", "GaussianDropout", "AlphaDropout"}
RESHAPING = {"Flatten", "Reshape"}      # move values, never change them
ACTIVATION_LAYERS = {"ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "ThresholdedReLU"}   # non-linear by nature
LINEAR = (None, "linear")


def question_ran(art: QuestionArtifacts) -> None:
    assert art.failure is None, f"Question non évaluée : {art.failure}."


def _model(art: QuestionArtifacts) -> ModelInfo:
    assert art.model is not None, (art.model_error or "aucun modèle Keras trouvé") + "."
    return art.model


def _effective_layers(model: ModelInfo):
    return [layer for layer in model.layers if layer.class_name not in PASS_THROUGH]


def _output_activation(model: ModelInfo) -> str | None:
    """What the network's output is, whichever way the student wrote it: the activation of the last layer
    that changes values (a Dense layer's own activation, an activation layer); any other layer there
    (BatchNormalization after the softmax, say) is named instead, since the output is then its output."""
    for layer in reversed(_effective_layers(model)):
        if layer.class_name in RESHAPING:
            continue
        if layer.class_name in SOFTMAX_LAYERS:
            return "softmax"
        if layer.class_name in ACTIVATION_LAYERS:
            return layer.activation or layer.class_name
        if layer.class_name in ("Activation", "Dense"):
            return layer.activation or "linear"
        return layer.activation if layer.activation not in LINEAR else f"couche {layer.class_name}"
    return None


def softmax_output(art: QuestionArtifacts, units: int = 10) -> None:
    model = _model(art)
    assert model.output_units == units, (
        f"La couche de sortie doit avoir {units} neurones (un par chiffre) ; le modèle en a {model.output_units}.")
    activation = _output_activation(model)
    assert activation == "softmax", (
        "La sortie du réseau doit être celle d'une activation 'softmax', sans autre couche après elle "
        f"(sortie trouvée : {activation!r}).")


def batchnorm_first(art: QuestionArtifacts, features: int = 784) -> None:
    model = _model(art)
    assert model.layers, "Le modèle ne contient aucune couche."
    first = model.layers[0]
    assert first.class_name == "BatchNormalization", (
        "La première couche du modèle doit être keras.layers.BatchNormalization "
        f"(première couche trouvée : {first.class_name}).")
    assert first.features == features, (
        f"La couche BatchNormalization doit prendre des entrées de taille {features} "
        f"(input_shape=({features},)) ; taille trouvée : {first.features}.")


def trained(art: QuestionArtifacts) -> None:
    assert art.question_fits, (
        f"Le modèle de la question {art.question} n'a pas été entraîné (aucun entraînement réussi : ni model.fit, "
        "ni model.train_on_batch, ni boucle d'entraînement appelant le modèle avec training=True).")


def _explained(rule: str, used: str, unknown: list[FitCall]) -> str:
    """A failed rule, what was used, and why the data of the fits where it is ``unknown`` was not examined."""
    unreadable = sorted({f.unreadable for f in unknown if f.unreadable})
    note = (f" ; les données passées à fit ({' ; '.join(unreadable)}) n'ont pas pu être examinées : "
            "utilisez des tableaux NumPy ou un tf.data.Dataset construit avec from_tensor_slices") if unreadable else ""
    return f"{rule} ; {used}{note}."


def trained_on_training_set(art: QuestionArtifacts) -> None:
    trained(art)
    fits = art.question_fits
    full = [f for f in fits if f.samples == TRAIN_SIZE]
    sizes = sorted({f.samples for f in fits}, key=lambda n: (n is None, n))
    assert full, _explained(
        f"Le modèle doit être entraîné avec model.fit sur les {TRAIN_SIZE} images d'entraînement (X_train, y_train)",
        f"nombre d'images utilisé : {', '.join('inconnu' if n is None else str(n) for n in sizes)}",
        [f for f in fits if f.samples is None])


def predicted_test_set(art: QuestionArtifacts) -> None:
    predictions = [p for p in art.predictions if p.kind == "predict" and p.question == art.question]
    assert predictions, "Les sorties du modèle doivent être prédites avec model.predict(X_test)."
    assert art.predicted_test_set, (
        f"model.predict doit être appliqué aux {TEST_SIZE} images de test (X_test).")


def fit_arguments(art: QuestionArtifacts, batch_size: int = 128, epochs: int = 5) -> None:
    trained(art)
    fits = art.question_fits
    used = ["inconnue" if f.batch_size is None else
            f"{f.batch_size} (fixée par les données passées à fit)" if f.batch_size_how == "data" else str(f.batch_size)
            for f in fits]
    assert any(f.batch_size == batch_size for f in fits), _explained(
        f"L'entraînement doit utiliser des batchs de taille {batch_size} (batch_size={batch_size})",
        f"taille utilisée : {', '.join(used)}", [f for f in fits if f.batch_size is None])
    assert any(f.batch_size == batch_size and f.epochs == epochs for f in fits), (
        f"L'entraînement doit durer {epochs} époques (epochs={epochs}) ; "
        f"nombre d'époques demandé : {', '.join(str(f.epochs) for f in fits)}.")


def _non_linear(layer) -> bool:
    if layer.class_name in ACTIVATION_LAYERS:
        return True
    return layer.class_name in ("Dense", "Activation") and layer.activation not in LINEAR


def _hidden_dense_non_linear(layers) -> list[int]:
    """Hidden Dense layers followed by a non-linearity: their own activation, or an activation layer
    before the next Dense (``Dense(128)``, ``BatchNormalization()``, ``Activation('tanh')`` counts)."""
    dense = [i for i, layer in enumerate(layers) if layer.class_name == "Dense"]
    return [i for i, nxt in zip(dense, dense[1:]) if any(_non_linear(layer) for layer in layers[i:nxt])]


def hidden_dense_layer(art: QuestionArtifacts, min_layers: int = 1) -> None:
    # The seed's advice ('relu' or 'sigmoid') is not the rubric: any non-linearity makes the network
    # deeper, while stacked linear layers are the same model as before.
    hidden = _hidden_dense_non_linear(_model(art).layers)
    what = "une couche Dense cachée" if min_layers == 1 else f"{min_layers} couches Dense cachées"
    assert len(hidden) >= min_layers, (
        f"Le réseau doit comporter au moins {what} avec une activation non linéaire (par exemple 'relu' ou "
        "'sigmoid') avant la couche de sortie : sans non-linéarité, des couches Dense empilées reviennent au "
        "modèle précédent.")


def min_accuracy(art: QuestionArtifacts, threshold: float) -> None:
    _model(art)
    contaminated = [f for f in art.fits if f.test_rows]
    assert not contaminated, (
        f"Le modèle a été entraîné avec {max(f.test_rows for f in contaminated)} images du jeu de test : "
        "la précision doit être jugée sur des données qui n'ont pas servi à l'entraînement.")
    assert not art.unaccounted, messages.sentence(messages.WEIGHTS_UNACCOUNTED.format(what=" ; ".join(art.unaccounted)))
    assert art.accuracy is not None, (art.accuracy_note or "la précision n'a pas pu être mesurée") + "."
    assert art.accuracy >= threshold, (
        f"Précision mesurée sur les {TEST_SIZE} images de test : {art.accuracy:.4f}, "
        f"en dessous du seuil attendu ({threshold:.2f}).")


def run_check(art: QuestionArtifacts, function: str, params: dict) -> None:
    """One rubric check as every caller runs it: the question must have run, then the check."""
    question_ran(art)
    CHECKS[function](art, **params)


def failure_message(exc: BaseException) -> str:
    """What the student reads when a check raised ``exc``: the failed assert's message, or the grader's fault."""
    if isinstance(exc, AssertionError):
        return str(exc.args[0]) if exc.args else "Vérification échouée."
    return "Erreur interne du correcteur pendant cette vérification."


def outcome(number: str, exc: BaseException | None) -> CheckOutcome:
    """The outcome of check ``number`` that raised ``exc`` (None: passed), wherever it ran."""
    if exc is None:
        return CheckOutcome(number, True)
    internal = "" if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
    return CheckOutcome(number, False, failure_message(exc), internal)


def evaluate(art: QuestionArtifacts, check: Check) -> CheckOutcome:
    """Run ``check`` here; a grader fault costs the check, never the run."""
    try:
        run_check(art, check.function, check.params)
    except Exception as exc:  # noqa: BLE001 - told apart by outcome()
        return outcome(check.number, exc)
    return outcome(check.number, None)


CHECKS = {f.__name__: f for f in (softmax_output, batchnorm_first, trained, trained_on_training_set,
                                  predicted_test_set, fit_arguments, hidden_dense_layer, min_accuracy)}
