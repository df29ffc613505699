"""Typed results of grading, passed between stages; the Gradescope dict is made only when writing.

Like otter's ``GradingResults``: a ``GradeReport`` holds per-question, per-check results and
turns into Gradescope's ``results.json`` format in ``to_gradescope_dict`` (and back, for
``--resume``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from . import messages
from .config import Config


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
class CheckResult:
    number: str                # "q2.1"
    description: str           # French, from grading.toml
    max_score: float
    passed: bool
    message: str               # French: "Réussie." or what to fix
    visible: bool = True       # hidden checks are shown after grades are published

    @property
    def score(self) -> float:
        return self.max_score if self.passed else 0.0


@dataclass(frozen=True)
class QuestionResult:
    id: str
    title: str
    checks: tuple[CheckResult, ...]

    @property
    def score(self) -> float:
        return sum(c.score for c in self.checks)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.checks)


@dataclass
class GradeReport:
    submission: str
    status: Status
    questions: tuple[QuestionResult, ...]
    events: tuple[Event, ...] = ()
    notes: tuple[str, ...] = ()
    failure: str | None = None         # French: why the submission was not graded at all
    measurements: dict = field(default_factory=dict)   # per question: what the grader measured
    duration_s: float | None = None
    kernel_restarts: int = 0
    sandbox: dict | None = None        # how the kernel was isolated (runner.sandbox.SandboxPolicy.isolation)

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
        lines = [messages.sentence(e.message) for e in self.events] + [messages.note(n) for n in self.notes]
        text = "\n".join(lines)
        return (messages.not_corrected(self.failure) + "\n" + text).strip() if self.failure else text

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
                "max_score": c.max_score, "output": c.message,
                "visibility": "visible" if c.visible else "after_published",
                "status": "passed" if c.passed else "failed",
            } for c in self.checks],
        }
        if self.duration_s is not None:
            results["extra_data"] = {"measurements": self.measurements, "duration_s": self.duration_s,
                                     "kernel_restarts": self.kernel_restarts}
            if self.sandbox is not None:
                results["extra_data"]["sandbox"] = self.sandbox
        return results

    @classmethod
    def from_gradescope_dict(cls, data: dict, config: Config) -> GradeReport:
        """A report written earlier (``--resume``), read back against the rubric it was graded with."""
        tests = {t["number"]: t for t in data.get("tests", [])}
        questions = tuple(QuestionResult(q.id, q.title, tuple(
            CheckResult(c.number, c.description, c.points, tests.get(c.number, {}).get("status") == "passed",
                        tests.get(c.number, {}).get("output", messages.not_graded(None)), c.visibility == "visible")
            for c in q.checks)) for q in config.questions)
        extra = data.get("extra_data") or {}
        return cls(data.get("submission", ""), Status(data.get("status", "ok")), questions,
                   tuple(Event(EventKind(e["kind"]), e.get("question"), e["message"]) for e in data.get("events", [])),
                   tuple(data.get("notes", [])), measurements=extra.get("measurements", {}),
                   duration_s=extra.get("duration_s"), kernel_restarts=extra.get("kernel_restarts", 0),
                   sandbox=extra.get("sandbox"))
