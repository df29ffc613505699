"""French texts of the reports, in one place (the rubric's own messages live with its checks)."""

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
GRADER_FAILURE = "erreur interne du correcteur, signalez-la à l'enseignant"


def sentence(message: str) -> str:
    """An event's message as a sentence of the report: capitalised, with a full stop."""
    return message[0].upper() + message[1:] + "."


def not_graded(failure: str | None) -> str:
    return f"Non évaluée : {failure}." if failure else "Non évaluée."


def invalid_file(error: str) -> str:
    return f"fichier invalide ({error})"


def not_corrected(failure: str) -> str:
    return f"Copie non corrigée : {failure}."


def note(text: str) -> str:
    return f"Remarque : {text}"
