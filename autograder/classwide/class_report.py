"""Class report: ``DIR/index.html``, the page an instructor opens after grading, and the LMS exports.

Built from the output folder alone (each ``<id>/results.json``, and ``<id>/executed.ipynb`` for the
suspected copies), so ``autograder report DIR`` rebuilds it without regrading. The page is one
self-contained French file: plots are SVG data URIs, the table sorts with a few lines of inline
script, nothing is fetched.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..core import messages
from ..core.codegen import TEMPLATES
from ..core.config import Config
from ..core.files import write_atomic
from ..core.results import GradeReport, QuestionMeasurement, Status, most_confused
from ..pipeline.report import RESULTS, read_report
from . import charts
from .history import FILE as HISTORY, read_history, rubric_hash
from .roster import Matched, Student, match, write_exports
from .similarity import Pair, class_code, suspected_copies

INDEX = "index.html"
NOT_RUN = (Status.INVALID_NOTEBOOK, Status.GRADER_ERROR)   # no check ran: left out of pass rates


@dataclass(frozen=True)
class Flag:
    kind: str          # a key of messages.FLAG_KINDS
    text: str          # French, why an instructor should look

    @property
    def label(self) -> str:
        return messages.FLAG_KINDS[self.kind]


@dataclass
class Row:
    report: GradeReport
    flags: list[Flag] = field(default_factory=list)
    student: Student | None = None

    @property
    def submission(self) -> str:
        return self.report.submission

    @property
    def link(self) -> str:
        return f"{quote(self.submission)}/feedback.html"


@dataclass
class ClassData:
    config: Config
    rows: list[Row]
    missing: list[Student]
    pairs: list[Pair]
    graded_at: datetime | None
    roster: bool
    history: list[dict] = field(default_factory=list)     # history.jsonl, oldest first
    rubric: str = ""                                      # the rubric's hash now

    @property
    def rubric_edited(self) -> bool:
        """grading.toml changed since the folder was last graded or rescored."""
        scored = [e for e in self.history if e.get("command", "").startswith(("grade", "rescore"))]
        return bool(scored) and scored[-1].get("rubric") != self.rubric

    @property
    def reports(self) -> list[GradeReport]:
        return [r.report for r in self.rows]

    @property
    def to_examine(self) -> list[Row]:
        return [r for r in self.rows if r.flags]


def load_reports(out: Path, config: Config) -> list[GradeReport]:
    """Every submission's results.json in ``out``; the folder's name is the id its feedback page lives under."""
    return [r for path in sorted(out.glob(f"*/{RESULTS}")) if (r := read_report(path.parent, config)) is not None]


def _measured_flags(report: GradeReport, config: Config) -> list[Flag]:
    flags = []
    limits, margin = config.thresholds(), config.class_report.near_threshold
    for q in config.question_ids:
        measured = report.measurements.get(q) or QuestionMeasurement()
        test_rows = measured.test_rows
        if test_rows:
            flags.append(Flag("test_images", messages.flag_test_images(q, test_rows)))
        if measured.test_inputs == "not_genuine":
            flags.append(Flag("test_inputs", messages.FLAG_TEST_INPUTS.format(question=q)))
        accuracy = measured.accuracy
        if accuracy is not None and q in limits and abs(accuracy - limits[q]) <= margin:
            flags.append(Flag("near_threshold", messages.FLAG_NEAR_THRESHOLD.format(
                question=q, accuracy=accuracy, threshold=limits[q], margin=margin)))
        if measured.model_refused:
            flags.append(Flag("model", messages.FLAG_MODEL.format(question=q, why=measured.model_refused)))
        if measured.unaccounted:
            what = " ; ".join(measured.unaccounted)
            flags.append(Flag("weights", messages.FLAG_WEIGHTS.format(question=q, what=what)))
        general, below = measured.generalization, config.generalization.review_below.get(q)
        if general and below is not None and general.ratio < below and not test_rows:
            flags.append(Flag("generalization", messages.FLAG_GENERALIZATION.format(
                question=q, test_loss=general.test_loss, train_loss=general.train_loss)))
    return flags


def flags_of(report: GradeReport, config: Config) -> list[Flag]:
    """Why an instructor should open this submission, from its results alone (copies and roster come later)."""
    flags = [] if report.status == Status.OK else [Flag("status", messages.flag_status(report.status))]
    flags += _measured_flags(report, config)
    if report.overridden:
        flags.append(Flag("override", messages.FLAG_OVERRIDE.format(
            checks=", ".join(c.number for c in report.overridden))))
    if report.kernel_restarts:
        flags.append(Flag("restarts", messages.FLAG_RESTARTS.format(count=report.kernel_restarts)))
    flags += [Flag("restored", n) for n in report.notes if messages.is_restored_cell_note(n)]
    return flags


def collect(out: Path, config: Config, roster: list[Student] | None = None) -> ClassData:
    reports = load_reports(out, config)
    matched: Matched = match(roster, [r.submission for r in reports])
    rows = {r.submission: Row(r, flags_of(r, config), matched.student_of.get(r.submission)) for r in reports}
    pairs = suspected_copies(class_code(out, list(rows), config), config)
    for pair in pairs:
        for one, other, share in ((pair.a, pair.b, pair.share_a), (pair.b, pair.a, pair.share_b)):
            rows[one].flags.append(Flag("copy", messages.FLAG_COPY.format(other=other, percent=round(share * 100))))
    for submission in matched.unknown if roster is not None else []:
        rows[submission].flags.append(Flag("not_in_roster", messages.FLAG_NOT_IN_ROSTER))
    times = [(out / r / "results.json").stat().st_mtime for r in rows]
    return ClassData(config, list(rows.values()), matched.missing, pairs,
                     datetime.fromtimestamp(max(times)) if times else None, roster is not None,
                     read_history(out), rubric_hash(config))


def check_rates(data: ClassData) -> list[dict]:
    """Per check, the share of submissions that ran and passed it, hardest first."""
    ran = [r for r in data.reports if r.status not in NOT_RUN]
    rates = []
    for check in data.config.checks:
        passed = sum(1 for r in ran for c in r.checks if c.number == check.number and c.passed)
        rates.append({"number": check.number, "description": check.description, "points": check.points,
                      "passed": passed, "count": len(ran), "rate": passed / len(ran) if ran else 0.0})
    return sorted(rates, key=lambda c: (c["rate"], c["number"]))


def summary(data: ClassData) -> dict:
    totals = [r.score for r in data.reports]
    return {
        "count": len(totals),
        "max_score": sum(c.points for c in data.config.checks),
        "statuses": dict(sorted(Counter(str(r.status) for r in data.reports).items())),
        "mean": statistics.fmean(totals) if totals else None,
        "median": statistics.median(totals) if totals else None,
    }


def _questions(data: ClassData) -> list[dict]:
    points = {q.id: [r.question_scores()[q.id] for r in data.reports] for q in data.config.questions}
    return [{"id": q.id, "title": q.title, "max": q.points,
             "mean": statistics.fmean(points[q.id]) if points[q.id] else None} for q in data.config.questions]


def _accuracies(reports: list[GradeReport], question: str) -> list[tuple[float, bool]]:
    """(accuracy the grader measured, trained on test images) of each submission whose question was measured."""
    measured = [r.measurements[question] for r in reports if r.status not in NOT_RUN and question in r.measurements]
    return [(m.accuracy, m.test_rows > 0) for m in measured if m.accuracy is not None]


def _plots(data: ClassData) -> dict[str, str]:
    config = data.config
    limits = config.thresholds()
    accuracies = {q: _accuracies(data.reports, q) for q in config.question_ids if q in limits}
    return {
        "totals": charts.totals_histogram([r.score for r in data.reports], sum(c.points for c in config.checks)),
        "questions": charts.question_points({q.id: [r.question_scores()[q.id] for r in data.reports]
                                             for q in config.questions}, {q.id: q.points for q in config.questions}),
        "accuracy": charts.accuracy_strips(accuracies, {q: limits[q] for q in accuracies}),
    }


def _confusions(data: ClassData) -> list[dict]:
    """Per question, the class's confusion matrix: every measured model's, summed (which digits the class confuses)."""
    out = []
    for q in data.config.question_ids:
        matrices = [r.measurements[q].confusion for r in data.reports
                    if r.status not in NOT_RUN and q in r.measurements and r.measurements[q].confusion]
        if matrices:
            total = [[sum(m[t][p] for m in matrices) for p in range(10)] for t in range(10)]
            out.append({"question": q, "models": len(matrices), "matrix": total, "confused": most_confused(total)})
    return out


def render(data: ClassData) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("class_report.html.j2").render(
        d=data, s=summary(data), checks=check_rates(data), questions=_questions(data), plots=_plots(data),
        confusions=_confusions(data), history_file=HISTORY,
        status_text=messages.STATUS_TEXT, flag_kinds=messages.FLAG_KINDS, missing_flag=messages.FLAG_MISSING)


def write_class_report(out: Path, config: Config, roster: list[Student] | None = None) -> ClassData:
    """``index.html`` and the LMS exports of the graded folder ``out``."""
    data = collect(out, config, roster)
    write_atomic(out / INDEX, render(data))
    matched = match(roster, [r.submission for r in data.reports])
    write_exports(out, config.name, matched, data.reports)
    return data
