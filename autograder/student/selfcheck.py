"""The student's public check, standalone: what `verifier.py` (written by release) runs.

It composes the grader's own stages (pipeline/stages.py: same mapping, preamble, recorder
and capture), runs the notebook in a plain Jupyter kernel, and calls the rubric's public
check functions on the captured artifacts, here.  It imports only modules that release bundles into the script, so
a student needs neither this repository nor the grader's sandbox.  The report's wording
is shared with `autograder check`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nbformat

from ..core.config import Check, Limits, Question
from ..core.environment import SILENT
from ..core import messages
from ..core.mnist_data import ensure_mnist
from ..core.results import CheckOutcome, EventKind
from ..notebook.load import InvalidNotebook, read_notebook
from ..notebook.plan import preamble_source
from ..pipeline.stages import Execute, NotRun, Pipeline, Prepare, ScoreHere, Work


def _header(name: str) -> list[str]:
    return [messages.SELFCHECK_HEADER.format(name=name), ""]


def invalid_lines(name: str, message: str) -> list[str]:
    return _header(name) + [message, "", messages.HIDDEN_NOTICE]


def report_lines(name: str, questions, outcomes: dict[str, CheckOutcome], *, events: list[tuple[str, str]],
                 notes: list[str]) -> list[str]:
    """French report: per question, each public check passed or what to fix; then the hidden-tests notice."""
    lines = _header(name)
    for q in questions:
        passed = sum(outcomes[c.number].passed for c in q.checks)
        lines.append(messages.SELFCHECK_QUESTION.format(
            question=q.id, title=q.title, passed=passed, total=len(q.checks)))
        lines.extend(f"  ! {message}" for question, message in events if question == q.id)
        for c in q.checks:
            outcome = outcomes[c.number]
            lines.append(messages.selfcheck_check(outcome.passed, c.number, c.description))
            if not outcome.passed:
                lines.append(messages.SELFCHECK_FIX.format(message=outcome.message))
        lines.append("")
    lines.extend(messages.NOTE.format(note=note) for note in notes)
    return lines + [messages.HIDDEN_NOTICE]


def failure_events(events) -> list[tuple[str | None, str]]:
    """What the report shows of execution events: why a question stopped, not each cell's error."""
    return [(e.question, e.message) for e in events if e.kind != EventKind.ERROR]


def check_notebook(path: Path, settings: dict) -> list[str]:
    """Run the public checks of ``settings`` (embedded in verifier.py) on the notebook at ``path``."""
    # The script carries no points: the public check reports checks, not a grade.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", SILENT)   # this process loads the captured models
    questions = [Question(q["id"], q["title"], tuple(Check(points=0.0, **c) for c in q["checks"]))
                 for q in settings["questions"]]
    try:
        notebook, notes = read_notebook(Path(path))
    except InvalidNotebook as exc:
        return invalid_lines(Path(path).name, f"Fichier invalide : {exc}.")
    mnist_path = ensure_mnist(log=lambda message: None)
    # The same stages as grading, with the plain launcher: the student's own kernel, no sandbox.
    limits = Limits(cell_timeout=settings["cell_timeout"], seed=settings["seed"], threads=settings["threads"])
    with tempfile.TemporaryDirectory(prefix="verifier-") as tmp:
        capture, work = Path(tmp) / "capture", Path(tmp) / "work"
        work.mkdir()
        selfcheck = Pipeline(
            Prepare(nbformat.from_dict(settings["template"]),
                    preamble_source(mnist_path, capture, settings["seed"], settings["threads"])),
            Execute(limits),
            NotRun(tuple(q.id for q in questions), settings["placeholder"]),
            ScoreHere(tuple(questions), mnist_path.parent))
        done = selfcheck(Work(notebook, capture, work))
    # The mapping's own notes only, not grade's (missing questions, restored cells): a missing
    # question's reason already shows under it.
    return report_lines(Path(path).name, questions, done.scores.outcomes, events=failure_events(done.result.events),
                        notes=notes + done.prepared.cell_map.notes)
