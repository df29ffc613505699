"""`autograder check`: a student runs the public checks on their notebook before handing it in.

Only checks marked visible in grading.toml run; hidden checks and their thresholds are
never run, named or hinted at, and the report says plainly that more tests run at
grading time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..core.config import Config
from ..core.results import Status
from ..pipeline.grade import Job, grade_submission
from ..core.mnist_data import ensure_mnist
from ..student.selfcheck import failure_events, invalid_lines, report_lines


def self_check(config: Config, config_path: Path, notebook: Path) -> list[str]:
    """Grade ``notebook`` with the public checks only; return the French report, line by line."""
    public = config.public()
    with tempfile.TemporaryDirectory(prefix="autograder-check-") as tmp:
        report = grade_submission(Job(Path(notebook), Path(notebook).stem, Path(tmp) / "check", config_path,
                                      ensure_mnist(), public_only=True))
    name = Path(notebook).name
    if report.status == Status.INVALID_NOTEBOOK:
        return invalid_lines(name, report.output)
    outcomes = {c.number: c.outcome for c in report.checks}
    return report_lines(name, public.questions, outcomes, events=failure_events(report.events),
                        notes=list(report.notes))
