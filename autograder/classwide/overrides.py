"""Overrides: points an instructor sets by hand for a check of a submission, in ``DIR/overrides.csv``.

The file is the record: `autograder override` writes it, an instructor may edit it by hand, and every
command that writes a submission's report (grade, --resume, --replace, rescore, report) applies it after
scoring.  It is validated whole before anything is written: an unknown submission or check, points out
of range or an empty reason is refused, with the line that holds it.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from pathlib import Path

from ..core.config import Config
from ..core.files import write_atomic
from ..core.results import Override

FILE = "overrides.csv"
COLUMNS = ["submission", "check", "points", "reason", "date"]

Overrides = dict[str, dict[str, Override]]     # submission -> check number -> override


class OverrideError(ValueError):
    """overrides.csv (or a new override) cannot be used; the message says where and why (English)."""


def load_overrides(out: Path, config: Config, submissions: set[str] | None = None) -> Overrides:
    """The overrides of the graded folder ``out``, validated against the rubric and its submissions."""
    path = Path(out) / FILE
    if not path.exists():
        return {}
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise OverrideError(f"{path}: cannot be read ({exc})") from None
    found: Overrides = {}
    for line, row in enumerate(rows, start=2):
        submission, number, override = _validated(row, config, submissions, f"{path}, line {line}")
        found.setdefault(submission, {})[number] = override
    return found


def set_override(out: Path, config: Config, submissions: set[str], submission: str, check: str,
                 points: float | None, reason: str = "") -> Overrides:
    """Add (or replace) one override, or remove it with ``points`` None; the file rewritten atomically."""
    overrides = load_overrides(out, config, submissions)
    if points is None:
        if check not in overrides.get(submission, {}):
            raise OverrideError(f"no override of {check} for {submission} to remove")
        del overrides[submission][check]
    else:
        date = datetime.now(timezone.utc).isoformat(timespec="seconds")
        row = {"submission": submission, "check": check, "points": f"{points:g}", "reason": reason, "date": date}
        overrides.setdefault(submission, {})[check] = _validated(row, config, submissions, "the override")[2]
    _write(out, overrides)
    return overrides


def _validated(row: dict, config: Config, submissions: set[str] | None, where: str) -> tuple[str, str, Override]:
    submission, number = (row.get("submission") or "").strip(), (row.get("check") or "").strip()
    checks = {c.number: c for c in config.checks}
    if submissions is not None and submission not in submissions:
        raise OverrideError(f"{where}: no graded submission {submission!r}")
    if number not in checks:
        raise OverrideError(f"{where}: no check {number!r} in the rubric (checks: {', '.join(checks)})")
    try:
        points = float(row.get("points") or "")
    except ValueError:
        raise OverrideError(f"{where}: points {row.get('points')!r} is not a number") from None
    if not 0 <= points <= checks[number].points:
        raise OverrideError(f"{where}: points {points:g} out of range for {number} (0 to {checks[number].points:g})")
    reason = (row.get("reason") or "").strip()
    if not reason:
        raise OverrideError(f"{where}: a reason is required (the student reads it)")
    return submission, number, Override(points, reason, (row.get("date") or "").strip())


def _write(out: Path, overrides: Overrides) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for submission in sorted(overrides):
        for number, o in sorted(overrides[submission].items()):
            writer.writerow([submission, number, f"{o.points:g}", o.reason, o.date])
    write_atomic(Path(out) / FILE, buf.getvalue())
