"""The stages one notebook flows through, each one job, composed into a `Pipeline`.

Like nbgrader's preprocessors composed into converters, every path that runs a notebook is the
same stages in the same order; the paths differ only in which stages and which launcher they use:

===================  =========================================================================
path                 stages (launcher)
===================  =========================================================================
grading              Prepare → Replay → Execute (sandboxed or forked) → NotRun → StopKernels →
                     ScoreApart (the clean scoring process) → Keep — pipeline/grade.py
rescoring            (no kernel) Restore (the artifacts grading's scoring stored, or the kept capture)
                     → ScoreApart — pipeline/rescore.py
self-check           Prepare → Execute (the student's plain kernel) → NotRun → ScoreHere
                     (public checks, in verifier.py's process) — student/selfcheck.py
otter's plugin       Prepare (questions that cannot run named in the preamble) → Replay; otter
                     executes, the checks run in its kernel — interop/otter_plugin.py
memo recording       Prepare (the template as its own submission) → Record → Execute (sandboxed)
                     — pipeline/memo.py
===================  =========================================================================

`Work` is what flows: each stage returns a copy with the field it computes set.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Protocol

import nbformat

from ..core.config import Limits, Question
from ..core.mnist_data import load_mnist
from ..core.results import Scores
from ..notebook.mapping import CellMap
from ..notebook.memo import PrefixMemo, recording_steps, with_memo
from ..notebook.plan import Step
from ..notebook.prepare import Prepared, not_run_reasons, prepare
from ..rubric.artifacts import load_question
from ..rubric.checks import evaluate
from ..runner.execute import ExecutionResult, execute
from ..runner.launch import Launcher


@dataclass(frozen=True)
class Work:
    notebook: nbformat.NotebookNode
    capture: Path                        # where the kernel's capture() writes; scoring reads it
    workdir: Path | None = None          # the kernel's working directory
    notes: tuple[str, ...] = ()          # French, for the student
    prepared: Prepared | None = None
    steps: tuple[Step, ...] = ()         # what the kernel runs, hidden steps included
    result: ExecutionResult | None = None
    failed: dict[str, str] = field(default_factory=dict)   # question -> French reason it is not graded
    scores: Scores | None = None
    artifacts: str | None = None         # the questions' artifacts as scoring stored them (rubric/stored.py)


class Stage(Protocol):
    def __call__(self, work: Work) -> Work: ...


class Pipeline:
    """Stages run in order; a stage given as None is left out (an optional aid not available)."""

    def __init__(self, *stages: Stage | None):
        self.stages = tuple(s for s in stages if s is not None)

    def __call__(self, work: Work) -> Work:
        for stage in self.stages:
            work = stage(work)
        return work


@dataclass(frozen=True)
class Prepare:
    """Map the cells onto the template and plan them behind the hidden preamble (which may be built from
    the map: otter's names the questions that cannot run)."""
    template: nbformat.NotebookNode
    preamble: str | Callable[[CellMap], str]

    def __call__(self, work: Work) -> Work:
        prepared = prepare(work.notebook, self.template, self.preamble)
        return replace(work, prepared=prepared, steps=tuple(prepared.steps), notes=work.notes + tuple(prepared.notes))


@dataclass(frozen=True)
class Replay:
    """The instructor's recorded first cells replayed from copies in ``where`` instead of run again."""
    memo: PrefixMemo
    where: Path

    def __call__(self, work: Work) -> Work:
        return replace(work, steps=tuple(with_memo(list(work.steps), self.memo, self.where)))


@dataclass(frozen=True)
class Record:
    """The preamble and the instructor's first cells only, each recorded into ``directory``."""
    directory: Path

    def __call__(self, work: Work) -> Work:
        return replace(work, steps=tuple(recording_steps(list(work.steps), self.directory)))


@dataclass(frozen=True)
class Execute:
    """Run the steps in a fresh kernel from ``launcher`` (None: the plain installed kernel)."""
    limits: Limits
    launcher: Launcher | None = None
    kernel_log: Path | None = None

    def __call__(self, work: Work) -> Work:
        result = execute(list(work.steps), work.workdir, self.limits, kernel_log=self.kernel_log,
                         launcher=self.launcher)
        return replace(work, result=result)


@dataclass(frozen=True)
class NotRun:
    """Why each question will not be graded: it failed while running, or none of its cells ran."""
    questions: tuple[str, ...]
    placeholder: str

    def __call__(self, work: Work) -> Work:
        result = work.result
        failures = {e.question: e.message for e in result.events if e.question in result.failed_questions}
        failed = not_run_reasons(work.prepared.cell_map, self.questions, ran=result.ran_questions,
                                 failed=failures, placeholder=self.placeholder)
        return replace(work, failed=failed)


@dataclass(frozen=True)
class ScoreHere:
    """Each check's function called in this process on the captures (no accuracy measured: the
    self-check's public checks)."""
    questions: tuple[Question, ...]
    mnist: Path                           # the folder of the verified copy (loaded once the kernel is gone)

    def __call__(self, work: Work) -> Work:
        outcomes, mnist = {}, load_mnist(self.mnist)
        for q in self.questions:
            art = load_question(work.capture, q.id, mnist, failure=work.failed.get(q.id), measure_accuracy=False)
            outcomes.update((c.number, evaluate(art, c)) for c in q.checks)
        return replace(work, scores=Scores(outcomes, {}))
