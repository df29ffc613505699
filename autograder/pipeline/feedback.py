"""The student's feedback page, ``feedback.html``: per question, the checks, then what the grader measured.

Every number comes from the scoring process (the captured model on the genuine test images, the
recorded trainings), never from what the notebook printed.  The page is one self-contained file:
figures are data URIs (core/figures.py), the style is inline, nothing is fetched.  ``[feedback]`` in
grading.toml hides any part a course does not want shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment, FileSystemLoader, select_autoescape
from matplotlib.figure import Figure

from ..core import messages
from ..core.codegen import TEMPLATES
from ..core.config import Config, Feedback
from ..core.figures import BLUE, ORANGE, png_uri, style, svg_uri
from ..core.mnist_data import Mnist
from ..core.results import FitMeasurement, GradeReport, QuestionMeasurement, QuestionResult, Status, most_confused

TOP_CONFUSIONS = 3
MAX_CURVES = 3      # per question, the last trainings' (a notebook may train a model many times)
CURVES = (("loss", "perte"), ("accuracy", "précision"))


@dataclass(frozen=True)
class Mistake:
    uri: str
    index: int          # in the test set
    true: int
    predicted: int


@dataclass(frozen=True)
class Training:
    fit: FitMeasurement
    curve: str | None        # the learning curves, as a data URI


@dataclass(frozen=True)
class QuestionView:
    result: QuestionResult
    events: list[str]
    measured: QuestionMeasurement
    threshold: float | None
    trainings: list[Training]
    confusion: list[list[int]]
    confused: list[tuple[int, int, int]]     # (true, predicted, count), most frequent first
    mistakes: list[Mistake]
    hints: list[tuple[str, str]]             # (check number, what to try) for each failed check


def render_feedback(config: Config, report: GradeReport, mnist: Mnist | None = None) -> str:
    """The page; ``mnist`` gives the test images the model got wrong (left out without it)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    shown = config.feedback
    questions = [_question(q, report, config, mnist) for q in report.questions]
    notes = list(report.notes) + [e.message for e in report.events if e.question is None]
    if report.status == Status.INVALID_NOTEBOOK:
        notes.insert(0, report.output)
    return env.get_template("feedback.html.j2").render(
        r=report, assignment=config.name, notes=notes, questions=questions, shown=shown,
        status_text=messages.STATUS_TEXT.get(report.status, report.status), via=messages.TRAINING_VIA)


def _question(q: QuestionResult, report: GradeReport, config: Config, mnist: Mnist | None) -> QuestionView:
    measured = report.measurements.get(q.id) or QuestionMeasurement()
    shown: Feedback = config.feedback
    hints = {c.number: c.hint for c in config.checks if c.hint}
    return QuestionView(
        result=q, events=[messages.sentence(e.message) for e in report.events if e.question == q.id],
        measured=measured, threshold=config.thresholds().get(q.id),
        trainings=[Training(f, _curves(f) if shown.training and i >= len(measured.fits) - MAX_CURVES else None)
                   for i, f in enumerate(measured.fits)],
        confusion=[list(row) for row in measured.confusion],
        confused=most_confused(measured.confusion, TOP_CONFUSIONS),
        mistakes=_mistakes(measured, mnist) if shown.mistakes else [],
        hints=[(c.number, hints[c.number]) for c in q.checks if not c.passed and c.number in hints])


def _mistakes(measured: QuestionMeasurement, mnist: Mnist | None) -> list[Mistake]:
    if mnist is None:
        return []
    return [Mistake(png_uri(mnist.x_test[i]), i, t, p) for i, t, p in measured.mistakes]


def _curves(fit: FitMeasurement) -> str | None:
    """Loss and accuracy per epoch as training reported them, validation dashed."""
    panels = [(key, label) for key, label in CURVES if fit.history.get(key)]
    if not panels or max(len(fit.history[k]) for k, _ in panels) < 2:
        return None
    with style(live_text=True):
        fig = Figure(figsize=(3.3 * len(panels), 2.2))
        for ax, (key, label) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
            for name, colour, line, legend in ((key, BLUE, "-", "entraînement"),
                                               (f"val_{key}", ORANGE, "--", "validation")):
                values = fit.history.get(name)
                if values:
                    ax.plot(range(1, len(values) + 1), values, line, color=colour, marker="o", markersize=3,
                            label=legend)
            ax.set_title(label, fontsize=9)
            ax.set_xlabel("époque")
            ax.xaxis.get_major_locator().set_params(integer=True)
            if fit.history.get(f"val_{key}"):
                ax.legend(frameon=False, fontsize=8)
        fig.subplots_adjust(left=0.1, right=0.97, bottom=0.2, top=0.88, wspace=0.3)   # fixed: no layout pass
        return svg_uri(fig, tight=False)
