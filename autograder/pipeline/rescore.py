"""Rescore one submission: its kept capture (keep.py) scored again under the current rubric, in the clean
scoring process, without a kernel.  What execution gave (status, events, notes, timings) is kept as graded."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.config import Config
from ..core.results import GradeReport
from .grade import ScoreApart, measurement_notes
from .keep import KeptCapture, missing_objects, restore, runtime_digest
from .stages import Pipeline, Work


class RegradeNeeded(Exception):
    """What the kept capture cannot give; the message (English) names it."""


def needs(submission_dir: Path, config: Config, store: Path, report: GradeReport) -> KeptCapture | None:
    """The kept capture a rescore of this submission reads (None: nothing ran, nothing to score), or
    RegradeNeeded saying why it cannot be rescored."""
    name = Path(submission_dir).name
    if report.duration_s is None:          # never executed (an invalid file, the grader's own failure)
        return None
    kept = KeptCapture.read(submission_dir)
    if kept is None:
        raise RegradeNeeded(f"{name}: graded without kept artifacts (an older grader version): regrade needed")
    if kept.runtime != runtime_digest():
        raise RegradeNeeded(f"{name}: captured by another version of the kernel runtime: regrade needed")
    captured = {Path(p).parts[0] for p in kept.files} | set(kept.failed)
    new = [q for q in config.question_ids if q not in captured]
    if new:
        raise RegradeNeeded(f"{name}: no capture of question(s) {', '.join(new)}: a regrade is needed to run them")
    if missing_objects(kept, store):
        raise RegradeNeeded(f"{name}: kept artifacts incomplete in {store}: regrade needed")
    return kept


@dataclass(frozen=True)
class Restore:
    """The kept capture written back where the scoring process reads it; or, when scoring stored what it
    computed from it under the same settings, that instead (no capture, no model loaded)."""
    kept: KeptCapture
    store: Path
    artifacts: str | None        # KeptCapture.stored_artifacts under the rubric scoring now

    def __call__(self, work: Work) -> Work:
        if self.artifacts is None:
            restore(self.kept, self.store, work.capture)
        return replace(work, failed=dict(self.kept.failed), artifacts=self.artifacts)


def rescore_submission(report: GradeReport, kept: KeptCapture | None, config: Config, store: Path,
                       staging: Path) -> GradeReport:
    """The report under ``config``'s rubric: scored again from ``kept`` (scoring.log into ``staging``, and
    kept.json when scoring stored new artifacts), or, when nothing ran, only re-mapped."""
    if kept is None:
        return report
    stored = kept.stored_artifacts(config, store)
    with tempfile.TemporaryDirectory(prefix="autograder-rescore-") as tmp:
        rescoring = Pipeline(Restore(kept, store, stored), ScoreApart(config, config.path, staging))
        work = rescoring(Work(None, Path(tmp) / "capture"))
    scores = work.scores
    if stored is None and work.artifacts is not None:     # the next rescore under these settings reads them
        kept.with_scored(config, work.artifacts, store).write(staging)
    old = set(measurement_notes(report.measurements))
    notes = [n for n in report.notes if n not in old] + measurement_notes(scores.measurements)
    return GradeReport.of(config, report.submission, report.status, scores.outcomes, events=report.events,
                          notes=notes, measurements=scores.measurements, duration_s=report.duration_s,
                          kernel_restarts=report.kernel_restarts, sandbox=report.sandbox)
