"""Fast tests of report building: typed results, the Gradescope dict made at the edge, the French page."""

import html

from autograder.core.config import load_config
from autograder.core.results import CheckOutcome, Event, EventKind, GradeReport, QuestionMeasurement, Status
from autograder.pipeline.feedback import render_feedback

CONFIG = load_config()


def outcomes(failing=()):
    return {c.number: CheckOutcome(c.number, c.number not in failing, f"à corriger {c.number}" if c.number in failing else "")
            for c in CONFIG.checks}


def test_scores_come_from_the_checks_and_the_gradescope_dict_lists_every_one():
    report = GradeReport.of(CONFIG, "élève", Status.OK, outcomes(failing=("q3.1",)), notes=["une remarque"])
    assert report.score == 17 and report.question_scores()["q3"] == 2 and report.max_score == 20
    data = report.to_gradescope_dict()
    assert [t["number"] for t in data["tests"]] == [c.number for c in CONFIG.checks]
    q31 = next(t for t in data["tests"] if t["number"] == "q3.1")
    assert (q31["score"], q31["status"], q31["output"]) == (0, "failed", "à corriger q3.1")
    assert all(t["output"] == "Réussie." for t in data["tests"] if t["number"] != "q3.1")
    hidden = {c.number for c in CONFIG.checks if c.visibility == "hidden"}
    assert {t["number"] for t in data["tests"] if t["visibility"] == "after_published"} == hidden
    assert data["status"] == "ok" and data["output"] == "Remarque : une remarque" and "extra_data" not in data


def test_a_report_read_back_for_resume_is_the_same_report():
    events = [Event(EventKind.TIMEOUT, "q1", "la question q1 a dépassé le temps imparti (90 s) et a été interrompue")]
    report = GradeReport.of(CONFIG, "b", Status.TIMEOUT, outcomes(failing=("q1.1", "q1.4")), events=events,
                            measurements={"q1": QuestionMeasurement(accuracy=0.9)}, duration_s=12.5, kernel_restarts=1)
    again = GradeReport.from_gradescope_dict(report.to_gradescope_dict(), CONFIG)
    assert again.to_gradescope_dict() == report.to_gradescope_dict()
    assert again.status is Status.TIMEOUT and again.events[0].kind is EventKind.TIMEOUT
    assert report.to_gradescope_dict()["output"].startswith("La question q1 a dépassé le temps imparti")


def test_an_invalid_file_scores_zero_with_its_reason_on_every_check_and_the_page():
    report = GradeReport.of(CONFIG, "vide", Status.INVALID_NOTEBOOK, failure="fichier invalide (vide)")
    data = report.to_gradescope_dict()
    assert data["score"] == 0 and data["output"] == "Copie non corrigée : fichier invalide (vide)."
    assert {t["output"] for t in data["tests"]} == {"Non évaluée : fichier invalide (vide)."}
    page = html.unescape(render_feedback(CONFIG, report))
    assert "Copie non corrigée : fichier invalide (vide)." in page
    assert "le fichier rendu n'est pas un notebook valide" in page and "Note : 0.00 / 20.00" in page


def test_feedback_page_is_per_question_in_french():
    report = GradeReport.of(CONFIG, "c", Status.OK, outcomes(failing=("q4.1",)))
    page = html.unescape(render_feedback(CONFIG, report))
    assert "Question q4 — Réseau plus profond : 3.50 / 5.00" in page
    assert "à corriger q4.1" in page and "échouée" in page and "Note : 18.50 / 20.00" in page
