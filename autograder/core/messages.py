"""French texts of the reports and feedback, in one place (the rubric's assert messages stay with its checks)."""

from __future__ import annotations

STATUS_TEXT = {
    "ok": "correction complète",
    "timeout": "une partie du notebook a dépassé le temps imparti",
    "kernel_died": "le noyau Python s'est arrêté pendant l'exécution",
    "budget": "le temps total alloué au notebook a été épuisé",
    "invalid_notebook": "le fichier rendu n'est pas un notebook valide",
    "grader_error": "erreur interne du correcteur",
}
PASSED = "Réussie."
MEASURED = "Mesuré par le correcteur : "   # starts what results.json adds to a check's output


def measured(accuracy: float | None, threshold: float, confused: list[tuple[int, int, int]]) -> str:
    """The figures of a question, in a check's output text (results.json, Gradescope)."""
    parts = [] if accuracy is None else [
        f"précision {accuracy * 100:.2f} % sur les 10 000 images de test (seuil {threshold * 100:g} %)"]
    if confused:
        parts.append("confusions les plus fréquentes : " + ", ".join(
            f"un {t} pris pour un {p} ({n} fois)" for t, p, n in confused))
    return MEASURED + " ; ".join(parts) + "." if parts else ""


OVERRIDDEN = "Points ajustés par l'enseignant : "
OVERRIDDEN_POINTS = OVERRIDDEN + "{points:g} / {max_score:g} ({reason})"
TRAINING_VIA = {"fit": "model.fit", "train_on_batch": "model.train_on_batch",
                "custom_loop": "boucle d'entraînement écrite à la main"}
GRADER_FAILURE = "erreur interne du correcteur, signalez-la à l'enseignant"
CHECK_NOT_RUN = "Vérification non exécutée (erreur du correcteur)."
HIDDEN_NOTICE = ("Attention : ces vérifications publiques ne sont qu'une partie de la correction. "
                 "Des tests cachés seront exécutés lors de la correction : réussir toutes les "
                 "vérifications ci-dessus ne garantit pas la note maximale.")


# Templates (str.format, named fields) of the self-check (`autograder check`, verifier.py) and report lines.
SELFCHECK_HEADER = "Vérification de « {name} » : tests publics uniquement"
SELFCHECK_QUESTION = "Question {question} — {title} : {passed}/{total} vérification(s) réussie(s)"
SELFCHECK_FIX = "      → à corriger : {message}"
INVALID_FILE = "fichier invalide ({error})"
NOT_CORRECTED = "Copie non corrigée : {failure}."
NOTE = "Remarque : {note}"


def selfcheck_check(passed: bool, number: str, description: str) -> str:
    return f"  {'✔' if passed else '✘'} {number} {description}"


def sentence(message: str) -> str:
    """An event's message as a sentence of the report: capitalised, with a full stop."""
    return message[0].upper() + message[1:] + "."


def not_graded(failure: str | None) -> str:
    return f"Non évaluée : {failure}." if failure else "Non évaluée."


# --- Execution (runner/execute.py, runner/sandbox.py) --------------------------------------

def where(question: str | None) -> str:
    return f"la question {question}" if question else "une cellule hors question"


KERNEL_CRASHED = "le noyau Python s'est arrêté brutalement (plantage, sortie forcée ou mémoire épuisée)"
KERNEL_UNRESPONSIVE = "le code ne répondait plus"
DURING_REPLAY = " (pendant la ré-exécution après un redémarrage)"
BUDGET_EXHAUSTED = "le temps total alloué au notebook est épuisé"
CELL_TIMEOUT = "{where} a dépassé le temps imparti ({seconds} s) et a été interrompue"
CELL_ERROR = "{where} a levé une erreur : {ename}: {evalue}"
KERNEL_DIED = "{where} a provoqué l'arrêt du noyau : {why}"
TOO_MANY_RESTARTS = "la question {question} n'a pas été exécutée : trop de redémarrages du noyau"
QUESTION_OUT_OF_BUDGET = ("la question {question} n'a pas pu être exécutée : le temps total alloué au notebook "
                          "({seconds} s) est épuisé")
TOO_MANY_PROCESSES = "trop de processus créés (limite : {limit})"
OUT_OF_MEMORY = "mémoire épuisée (limite : {limit_mb} Mo)"


# --- Mapping and notes (notebook/mapping.py, notebook/prepare.py, pipeline/grade.py) --------

QUESTION_MISSING = "aucune cellule de cette question n'a été trouvée dans le notebook"
QUESTION_SYNTAX = "le code de la question n'a pas pu s'exécuter (erreur de syntaxe)"
QUESTION_NOT_COMPLETED = "la question n'a pas été complétée (« {placeholder} » est encore présent)"
GIVEN_CELL_REINSERTED = "la cellule fournie « {grade_id} » manquait et a été rétablie"
GIVEN_CELL_RESTORED = "la cellule fournie « {grade_id} » avait été modifiée et a été rétablie"
NO_CELL_FOR = "aucune cellule de la question {question} n'a été trouvée"
TEST_INPUTS_NOT_GENUINE = ("question {question} : les données passées à evaluate/predict ne sont pas les 10 000 images de "
                           "test MNIST ; la précision a été mesurée par le correcteur sur le vrai jeu de test")
TRAINING_DATA_UNEXAMINED = ("question {question} : les données d'entraînement ({what}) n'ont pas pu être "
                            "examinées : le correcteur n'a pas pu vérifier qu'elles ne contiennent aucune image de test")


# --- Loading a submission (notebook/load.py, distribution/intake.py) -----------------------------

FILE_EMPTY = "le fichier est vide"
FILE_NOT_UTF8 = "le fichier n'est pas un texte UTF-8 (fichier binaire ou mal encodé)"
NOT_A_NOTEBOOK = "le fichier JSON n'est pas un notebook Jupyter (aucune liste de cellules)"
OLD_FORMAT_UNCONVERTIBLE = "le notebook est dans un ancien format qui n'a pas pu être converti"
NO_CELL_LIST = "le notebook ne contient pas de liste de cellules"
NO_CELLS = "le notebook ne contient aucune cellule"
DUPLICATE_CELL_IDS = "des identifiants de cellules étaient dupliqués ; ils ont été renumérotés"
LOOSE_FORMAT = "le notebook ne respecte pas exactement le format nbformat ; il a été lu au mieux"
ZIP_WITHOUT_NOTEBOOK = "l'archive zip ne contient aucun notebook"
ZIP_NOTEBOOK_TOO_LARGE = "le notebook contenu dans l'archive est trop volumineux"
ZIP_UNREADABLE = "l'archive zip est illisible ou corrompue"
INVALID_JSON = "le fichier n'est pas un JSON valide (ligne {line}) : notebook tronqué ou corrompu"
CONVERTED_FROM = "notebook converti depuis le format nbformat {version}"
INVALID_CELL = "la cellule n°{number} du notebook est invalide"
INVALID_CELL_CONTENT = "la cellule n°{number} du notebook a un contenu invalide"
UNREADABLE_FILE = "le fichier n'a pas pu être lu ({reason})"


# --- What the scoring process could not do (rubric/artifacts.py) -------------------------

QUESTION_NOT_RUN = "la question n'a pas été exécutée (cellule absente ou non reconnue)"
NO_MODEL = "aucun modèle Keras n'a été créé, entraîné ou utilisé dans cette question"
MODEL_NOT_SAVED = "le modèle n'a pas pu être enregistré pour la correction"
NOTEBOOK_CODE_IN_MODEL = ("le modèle utilise du code Python écrit dans le notebook (fonction lambda ou def, couche "
                          "Lambda) : par sécurité, le correcteur ne l'exécute pas. Utilisez les activations et couches "
                          "de Keras, par exemple activation='tanh' ou keras.layers.LeakyReLU()")
NO_TEST_SET = ("impossible de retrouver le jeu de test MNIST dans les données passées à evaluate/predict : "
               "la précision n'a pas pu être mesurée")
DATA_KINDS = {"tf.data": "un tf.data.Dataset", "generator": "un générateur Python", "PyDataset": "un keras.utils.PyDataset"}
DATA_HIDDEN_BY = {
    "source": "construit avec {}()",
    "op": "transformé avec {}()",
    "subset": "dont {}() retient des exemples au hasard",
    "after_batch": "auquel {}() est appliqué après batch()",
    "not_batched": "sans batch()",
    "steps_subset": "dont steps_per_epoch ne lit qu'une partie, dans un ordre aléatoire",
    "multiprocessing": "lu par d'autres processus (use_multiprocessing=True)",
    "not_arrays": "dont les batchs ne sont pas des tableaux",
    "incomplete": "dont les batchs n'ont pas tous été vus",
}


UNACCOUNTED_CHANGE = ("les poids du modèle ont changé sans entraînement enregistré (ni model.fit, ni "
                      "model.train_on_batch, ni boucle d'entraînement appelant le modèle avec training=True, ni copie "
                      "des poids d'un autre modèle entraîné dans le notebook)")
UNRECORDED_STEPS = ("l'optimiseur du modèle a fait {saved} mises à jour des poids alors que l'entraînement "
                    "enregistré n'en explique que {recorded}")
WEIGHTS_UNACCOUNTED = ("{what} : la précision ne peut pas être attribuée à un entraînement vérifiable, la copie "
                       "sera examinée par l'enseignant")
MODEL_NOT_RELOADED = "le modèle n'a pas pu être rechargé pour la correction ({error})"
MODEL_NOT_EVALUATED = "le modèle n'a pas pu être évalué sur le jeu de test ({error})"


# --- Class report (classwide/class_report.py, classwide/roster.py): for the instructor ---------

FLAG_KINDS = {   # the short label of each reason, in the table of submissions
    "status": "correction incomplète",
    "test_images": "images de test",
    "test_inputs": "données de test",
    "near_threshold": "près du seuil",
    "restarts": "noyau redémarré",
    "restored": "cellule rétablie",
    "copy": "copie suspecte",
    "weights": "poids inexpliqués",
    "model": "modèle non évalué",
    "generalization": "test trop bien réussi",
    "not_in_roster": "hors liste",
    "override": "points ajustés",
    "missing": "copie manquante",
}
FLAG_NOT_IN_ROSTER = "copie absente de la liste des étudiants : à rattacher à la main (absente des exports Moodle et Canvas)"
FLAG_MISSING = "aucune copie rendue"
CELL_LABEL_ADDED = "cellule ajoutée"
CELL_LABEL_EXERCISE = "cellule de la question"
CELL_LABEL_FREE = "cellule ajoutée, hors question"


def flag_status(status: str) -> str:
    return f"correction incomplète ({status}) : {STATUS_TEXT.get(status, status)}"


def flag_test_images(question: str, rows: int) -> str:
    count = f"{rows:,}".replace(",", "\u00a0")    # 10 000, as French writes it
    return f"question {question} : le modèle a été entraîné avec {count} images du jeu de test"


FLAG_TEST_INPUTS = "question {question} : les données passées à evaluate/predict ne sont pas les images de test MNIST"
FLAG_NEAR_THRESHOLD = ("question {question} : précision mesurée {accuracy:.4f}, à moins de {margin:g} du seuil "
                       "({threshold:.2f})")
FLAG_MODEL = "question {question} : le modèle n'a pas pu être évalué ({why}) ; à corriger à la main"
FLAG_WEIGHTS = "question {question} : {what}"
FLAG_GENERALIZATION = ("question {question} : le modèle réussit mieux les images de test que les images "
                       "d'entraînement (perte moyenne {test_loss:.3f} contre {train_loss:.3f}), signe possible d'un "
                       "entraînement sur le jeu de test")
FLAG_RESTARTS = "le noyau a été redémarré {count} fois"
FLAG_OVERRIDE = "points ajustés par l'enseignant : {checks}"
FLAG_COPY = "copie suspecte : {percent} % de code en commun avec « {other} »"


def is_restored_cell_note(text: str) -> bool:
    """Whether a note says that a given cell was modified or deleted and put back."""
    for template in (GIVEN_CELL_RESTORED, GIVEN_CELL_REINSERTED):
        before, after = template.split("{grade_id}")
        if text.startswith(before) and text.endswith(after) and len(text) > len(before) + len(after):
            return True
    return False
