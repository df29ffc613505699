"""The instructor's review loop on a graded folder: rescore under a changed rubric, override a check's
points, and write the class outputs again, each recorded in ``history.jsonl``.

A rescore is all or nothing: every submission's new files are written into ``DIR/.staging/`` first,
then a ``COMMIT`` mark, then moved into place; a run interrupted before the mark leaves the folder as it
was (the staging is discarded by the next command), one interrupted after it is finished by the next
command (``recover``).  Everything a rescore needs is checked before anything is written.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..classwide.class_report import ClassData, load_reports, write_class_report
from ..classwide.grades import write_grades
from ..classwide.history import record
from ..classwide.overrides import Overrides, load_overrides, set_override
from ..classwide.roster import Student
from ..core.config import Config
from ..core.mnist_data import ensure_mnist, shared_mnist
from ..core.results import GradeReport
from ..pipeline.keep import STORE
from ..pipeline.report import RESULTS, write_submission_reports
from ..pipeline.rescore import RegradeNeeded, needs, rescore_submission
from ..rubric.checks import CHECKS

STAGING = ".staging"
COMMIT = "COMMIT"
ASIDE = ".replaced"


@dataclass(frozen=True)
class Change:
    submission: str
    check: str
    old: float | None       # None: the check was not in the rubric it was graded with
    new: float | None       # None: the check is no longer in the rubric


def recover(out: Path) -> None:
    """Finish a committed rescore, or drop one that never reached its commit mark; put back a submission set
    aside for a regrade that did not finish (``grade --replace``), drop those that did."""
    staging, aside = Path(out) / STAGING, Path(out) / ASIDE
    if (staging / COMMIT).exists():
        for path in sorted(p for p in staging.rglob("*") if p.is_file() and p.name != COMMIT):
            target = Path(out) / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    shutil.rmtree(staging, ignore_errors=True)
    for old in sorted(aside.iterdir()) if aside.is_dir() else []:
        if not (Path(out) / old.name / RESULTS).exists():
            shutil.rmtree(Path(out) / old.name, ignore_errors=True)
            os.replace(old, Path(out) / old.name)
    shutil.rmtree(aside, ignore_errors=True)


def set_aside(out: Path, submissions: list[str]) -> None:
    """Move the graded folders of ``submissions`` aside, to be graded again into fresh ones (recover)."""
    for name in submissions:
        if (Path(out) / name).is_dir():
            (Path(out) / ASIDE).mkdir(exist_ok=True)
            os.replace(Path(out) / name, Path(out) / ASIDE / name)


def rescore(out: Path, config: Config, roster: list[Student] | None = None,
            workers: int = 1) -> tuple[list[Change], ClassData]:
    """Every submission of ``out`` scored again under ``config``, by ``workers`` processes (each with its warm
    scoring process); RegradeNeeded (nothing written) when the kept artifacts cannot give what the rubric asks."""
    recover(out)
    unknown = sorted({c.function for c in config.checks} - set(CHECKS))
    if unknown:
        raise RegradeNeeded(f"check function(s) {', '.join(unknown)} not in this grader's rubric "
                            "(autograder/rubric/checks.py): a grader that has them must regrade")
    store, staging = out / STORE, out / STAGING
    reports = load_reports(out, config)
    overrides = load_overrides(out, config, {r.submission for r in reports})
    plans = [(out, config, r, needs(out / r.submission, config, store, r), overrides.get(r.submission, {}))
             for r in reports]     # raises before any write
    ensure_mnist()
    if workers > 1 and len(plans) > 1:
        with ProcessPoolExecutor(min(workers, len(plans)), mp_context=multiprocessing.get_context("spawn")) as pool:
            new_reports = list(pool.map(_staged, *zip(*plans)))
    else:
        new_reports = [_staged(*plan) for plan in plans]
    changes = [c for new in new_reports for c in _changes(out / new.submission, new)]
    (staging / COMMIT).write_text("")
    recover(out)
    data = _class_outputs(out, config, new_reports, roster)
    record(out, config, "rescore", _changed(changes))
    return changes, data


def _staged(out: Path, config: Config, report: GradeReport, kept, overrides) -> GradeReport:
    """One submission rescored, its new files written into the staging folder."""
    target = out / STAGING / report.submission
    target.mkdir(parents=True, exist_ok=True)
    new = rescore_submission(report, kept, config, out / STORE, target).with_overrides(overrides)
    write_submission_reports(target, config, new, None, shared_mnist(ensure_mnist().parent))
    return new


def override(out: Path, config: Config, submission: str, check: str, points: float | None, reason: str,
             roster: list[Student] | None = None) -> tuple[GradeReport, ClassData]:
    """Set (``points``) or remove (None) one check's points by hand, and write what it changes."""
    recover(out)
    reports = {r.submission: r for r in load_reports(out, config)}
    overrides = set_override(out, config, set(reports), submission, check, points, reason)
    adjusted = apply_overrides(out, config, list(reports.values()), overrides)
    record(out, config, "override" if points is not None else "override --remove", {submission: [check]})
    return next(r for r in adjusted if r.submission == submission), _class_outputs(out, config, adjusted, roster)


def apply_overrides(out: Path, config: Config, reports: list[GradeReport],
                    overrides: Overrides | None = None) -> list[GradeReport]:
    """``reports`` with overrides.csv applied; a submission whose overrides changed gets its files again."""
    overrides = load_overrides(out, config, {r.submission for r in reports}) if overrides is None else overrides
    adjusted = []
    for report in reports:
        new = report.with_overrides(overrides.get(report.submission, {}))
        if new != report:
            write_submission_reports(out / report.submission, config, new, None, shared_mnist(ensure_mnist().parent))
        adjusted.append(new)
    return adjusted


def refresh(out: Path, config: Config, roster: list[Student] | None = None) -> ClassData:
    """The class outputs of ``out`` written again (`autograder report`), overrides.csv applied first."""
    recover(out)
    reports = load_reports(out, config)
    adjusted = apply_overrides(out, config, reports)
    changed = {new.submission: [c.number for c in new.overridden] for old, new in zip(reports, adjusted) if old != new}
    if changed:
        record(out, config, "report (overrides.csv applied)", changed)
    return _class_outputs(out, config, adjusted, roster)


def _class_outputs(out: Path, config: Config, reports: list[GradeReport], roster) -> ClassData:
    try:
        ignored = json.loads((out / "summary.json").read_text()).get("ignored_files", [])
    except (OSError, ValueError):
        ignored = []
    write_grades(out, config, reports, ignored)
    return write_class_report(out, config, roster)


def _changes(submission_dir: Path, new: GradeReport) -> list[Change]:
    """What the rescore changes, check by check, against the results.json it replaces."""
    old = {t["number"]: t["score"] for t in json.loads((submission_dir / RESULTS).read_text()).get("tests", [])
           if "number" in t}
    now = {c.number: c.score for c in new.checks}
    return [Change(new.submission, n, old.get(n), now.get(n)) for n in sorted(old.keys() | now.keys())
            if old.get(n) != now.get(n)]


def _changed(changes: list[Change]) -> dict[str, list[str]]:
    changed: dict[str, list[str]] = {}
    for c in changes:
        changed.setdefault(c.submission, []).append(c.check)
    return changed
