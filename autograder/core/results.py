"""Typed results of grading, passed between stages; JSON is made only at the edges.

One outcome type, ``CheckOutcome``, goes from the scoring process (or the self-check) to every
report; a ``CheckResult`` is the rubric's line beside its outcome.  Like otter's ``GradingResults``,
a ``GradeReport`` is built once (``GradeReport.of``), frozen, and turns into Gradescope's
``results.json`` format in ``to_gradescope_dict`` (and back, for ``--resume`` and the class report).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum

from . import messages
from .config import Check, Config, Feedback, Question


class Status(StrEnum):
    """How grading of one submission ended (results.json's ``status``, grades.csv's column)."""
    OK = "ok"
    TIMEOUT = "timeout"
    KERNEL_DIED = "kernel_died"
    BUDGET = "budget"
    INVALID_NOTEBOOK = "invalid_notebook"
    GRADER_ERROR = "grader_error"


class EventKind(StrEnum):
    TIMEOUT = "timeout"
    KERNEL_DIED = "kernel_died"
    ERROR = "error"
    BUDGET = "budget"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    question: str | None
    message: str               # French, for the student


@dataclass(frozen=True)
class CheckOutcome:
    """What running one rubric check gave, wherever it ran."""
    number: str                # "q2.1"
    passed: bool
    message: str = ""          # French: what to fix ("" when passed)
    internal: str = ""         # English: the grader's own failure, for the instructor's log

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CheckOutcome:
        return cls(data["number"], bool(data["passed"]), data.get("message", ""), data.get("internal", ""))


@dataclass(frozen=True)
class Override:
    """Points an instructor set by hand for one check of one submission (DIR/overrides.csv)."""
    points: float
    reason: str                # shown to the student
    date: str = ""


@dataclass(frozen=True)
class CheckResult:
    """A rubric check of grading.toml, its outcome, and the instructor's override if any."""
    check: Check
    outcome: CheckOutcome
    measured: str = ""         # French: the question's figures, for an accuracy check's output
    override: Override | None = None

    number = property(lambda self: self.check.number)
    description = property(lambda self: self.check.description)     # French, from grading.toml
    max_score = property(lambda self: self.check.points)
    visible = property(lambda self: self.check.visibility == "visible")   # hidden: shown once grades are out
    passed = property(lambda self: self.outcome.passed)

    @property
    def message(self) -> str:
        """French: "Réussie." or what to fix."""
        return messages.PASSED if self.passed else self.outcome.message

    @property
    def score(self) -> float:
        if self.override is not None:
            return self.override.points
        return self.max_score if self.passed else 0.0

    @property
    def output(self) -> str:
        """results.json's text: the message, the figures, the instructor's adjustment."""
        adjusted = self.override and messages.OVERRIDDEN_POINTS.format(
            points=self.override.points, max_score=self.max_score, reason=self.override.reason)
        return "\n".join(filter(None, (self.message, self.measured, adjusted)))


@dataclass(frozen=True)
class QuestionResult:
    """A question of the rubric and its checks' results."""
    question: Question
    checks: tuple[CheckResult, ...]

    id = property(lambda self: self.question.id)
    title = property(lambda self: self.question.title)   # French, from grading.toml

    @property
    def score(self) -> float:
        return sum(c.score for c in self.checks)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.checks)


# --- What the scoring process measured (results.json's extra_data.measurements) -----------------

@dataclass(frozen=True)
class FitMeasurement:
    """One recorded training of the question's model, as the scoring process read it."""
    question: str | None = None
    batch_size: int | None = None
    epochs: int | None = None
    via: str | None = None
    samples: int | None = None
    test_rows: int | None = None     # rows of the training data that are test images
    unreadable: str | None = None    # French: why the training data could not be examined
    history: dict[str, list[float]] = field(default_factory=dict)   # per epoch, as training reported it


@dataclass(frozen=True)
class LayerMeasurement:
    kind: str                        # the Keras class: "Dense", "BatchNormalization", ...
    units: int | None = None
    activation: str | None = None


@dataclass(frozen=True)
class ModelMeasurement:
    """The model as graded, read from its capture."""
    layers: tuple[LayerMeasurement, ...] = ()
    output_units: int | None = None
    params: int | None = None


@dataclass(frozen=True)
class GeneralizationMeasurement:
    test_loss: float
    train_loss: float
    test_accuracy: float
    train_accuracy: float
    ratio: float                     # test loss / training loss, rounded


@dataclass(frozen=True)
class QuestionMeasurement:
    accuracy: float | None = None    # on the genuine 10,000 test images
    test_inputs: str | None = None   # "genuine", "not_genuine" or None when the model never predicted them
    note: str | None = None          # French: why there is no accuracy
    fits: tuple[FitMeasurement, ...] = ()
    unaccounted: tuple[str, ...] = ()    # French: weight changes no recorded training explains
    model_refused: str | None = None     # French: why the model was not loaded
    generalization: GeneralizationMeasurement | None = None
    model: ModelMeasurement | None = None
    confusion: tuple[tuple[int, ...], ...] = ()    # on the test images: rows true digit, columns predicted
    mistakes: tuple[tuple[int, int, int], ...] = ()   # (test image index, true digit, predicted digit)

    @property
    def test_rows(self) -> int:
        return max((f.test_rows or 0 for f in self.fits), default=0)

    @property
    def unreadable(self) -> list[str]:
        return sorted({f.unreadable for f in self.fits if f.unreadable})

    def to_dict(self) -> dict:
        return asdict(self)     # tuples become lists in JSON

    @classmethod
    def from_dict(cls, data: dict) -> QuestionMeasurement:
        """Read back from results.json; fields a report of an older version lacks take their defaults."""
        values = _known(cls, data)
        values["fits"] = tuple(FitMeasurement(**_known(FitMeasurement, f)) for f in data.get("fits", ()))
        values["unaccounted"] = tuple(data.get("unaccounted") or ())
        general, model = data.get("generalization"), data.get("model")
        values["generalization"] = GeneralizationMeasurement(**general) if general else None
        values["model"] = model and ModelMeasurement(
            tuple(LayerMeasurement(**_known(LayerMeasurement, layer)) for layer in model.get("layers", ())),
            model.get("output_units"), model.get("params"))
        values["confusion"] = tuple(tuple(row) for row in data.get("confusion") or ())
        values["mistakes"] = tuple(tuple(m) for m in data.get("mistakes") or ())
        return cls(**values)


def _figures(check: Check, measured: QuestionMeasurement | None, config: Config) -> str:
    """What the grader measured of the question, told with the check that judges its accuracy."""
    if measured is None or "threshold" not in check.params:
        return ""
    return figures(measured, float(check.params["threshold"]), config.feedback)


def figures(measured: QuestionMeasurement, threshold: float, shown: Feedback) -> str:
    """The sentence results.json and otter's output add to a question's accuracy check (French)."""
    return messages.measured(measured.accuracy if shown.accuracy else None, threshold,
                             most_confused(measured.confusion) if shown.confusion else [])


def most_confused(confusion, n: int = 3) -> list[tuple[int, int, int]]:
    """(true digit, predicted digit, count) of the ``n`` most frequent confusions, most frequent first."""
    pairs = [(count, t, p) for t, row in enumerate(confusion) for p, count in enumerate(row) if t != p and count]
    return [(t, p, count) for count, t, p in sorted(pairs, key=lambda x: (-x[0], x[1], x[2]))[:n]]


def _message(test: dict) -> str:
    """A check's own message, from results.json's output (the figures and adjustment are added when writing)."""
    text = test.get("output", "")
    for marker in (messages.MEASURED, messages.OVERRIDDEN):
        text = text.split("\n" + marker)[0]
    return text


def _known(cls, data: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class GradeReport:
    submission: str
    status: Status
    questions: tuple[QuestionResult, ...]
    events: tuple[Event, ...] = ()
    notes: tuple[str, ...] = ()
    failure: str | None = None         # French: why the submission was not graded at all
    measurements: dict[str, QuestionMeasurement] = field(default_factory=dict)
    duration_s: float | None = None
    kernel_restarts: int = 0
    sandbox: dict | None = None        # how the kernel was isolated (runner.sandbox.SandboxPolicy.isolation)

    @classmethod
    def of(cls, config: Config, submission: str, status: Status, outcomes: dict[str, CheckOutcome] | None = None, *,
           failure: str | None = None, events=(), notes=(), **run) -> GradeReport:
        """The report, once: every rubric check appears, with score 0 where it could not run, so totals
        compare; ``run`` holds what execution and scoring measured (measurements, duration_s, ...)."""
        outcomes, measurements = outcomes or {}, run.get("measurements", {})
        questions = tuple(QuestionResult(q, tuple(
            CheckResult(c, outcomes.get(c.number) or CheckOutcome(c.number, False, messages.not_graded(failure)),
                        _figures(c, measurements.get(q.id), config))
            for c in q.checks)) for q in config.questions)
        return cls(submission, Status(status), questions, tuple(events), tuple(notes), failure, **run)

    @property
    def checks(self) -> tuple[CheckResult, ...]:
        return tuple(c for q in self.questions for c in q.checks)

    @property
    def score(self) -> float:
        return round(sum(c.score for c in self.checks), 4)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.checks)

    def question_scores(self) -> dict[str, float]:
        return {q.id: q.score for q in self.questions}

    @property
    def output(self) -> str:
        """The French summary: events, then notes; first why it was not graded, if so."""
        lines = [messages.sentence(e.message) for e in self.events] + [messages.NOTE.format(note=n) for n in self.notes]
        text = "\n".join(lines)
        return (messages.NOT_CORRECTED.format(failure=self.failure) + "\n" + text).strip() if self.failure else text

    def to_gradescope_dict(self) -> dict:
        results = {
            "score": self.score,
            "max_score": self.max_score,
            "status": str(self.status),
            "submission": self.submission,
            "output": self.output,
            "events": [{"kind": str(e.kind), "question": e.question, "message": e.message} for e in self.events],
            "notes": list(self.notes),
            "tests": [{
                "name": f"{c.number} {c.description}", "number": c.number, "score": c.score,
                "max_score": c.max_score, "output": c.output,
                "visibility": "visible" if c.visible else "after_published",
                "status": "passed" if c.passed else "failed",
                **({"override": asdict(c.override)} if c.override else {}),
            } for c in self.checks],
        }
        if self.duration_s is not None:
            results["extra_data"] = {"measurements": {q: m.to_dict() for q, m in self.measurements.items()},
                                     "duration_s": self.duration_s, "kernel_restarts": self.kernel_restarts}
            if self.sandbox is not None:
                results["extra_data"]["sandbox"] = self.sandbox
        return results

    @classmethod
    def from_gradescope_dict(cls, data: dict, config: Config) -> GradeReport:
        """A report written earlier (``--resume``), read back against the rubric it was graded with."""
        tests = [t for t in data.get("tests", []) if "number" in t]
        outcomes = {t["number"]: CheckOutcome(t["number"], t.get("status") == "passed", _message(t)) for t in tests}
        overrides = {t["number"]: Override(**t["override"]) for t in tests if t.get("override")}
        extra = data.get("extra_data") or {}
        return cls.of(config, data.get("submission", ""), Status(data.get("status", "ok")), outcomes,
                      events=(Event(EventKind(e["kind"]), e.get("question"), e["message"])
                              for e in data.get("events", [])),
                      notes=data.get("notes", []),
                      measurements={q: QuestionMeasurement.from_dict(m)
                                    for q, m in extra.get("measurements", {}).items()},
                      duration_s=extra.get("duration_s"), kernel_restarts=extra.get("kernel_restarts", 0),
                      sandbox=extra.get("sandbox")).with_overrides(overrides)

    def with_overrides(self, overrides: dict[str, Override]) -> GradeReport:
        """The report with the instructor's points on those checks (and none on the others)."""
        questions = tuple(replace(q, checks=tuple(replace(c, override=overrides.get(c.number)) for c in q.checks))
                          for q in self.questions)
        return replace(self, questions=questions)

    @property
    def overridden(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.override is not None)


@dataclass(frozen=True)
class Scores:
    """What scoring gave: each check's outcome, and per question what was measured."""
    outcomes: dict[str, CheckOutcome]
    measurements: dict[str, QuestionMeasurement]
