"""Roster and LMS exports: who should have handed in, and the grades in the files Moodle and Canvas import.

The roster is a CSV file with the header ``submission,identifier,name,email``: ``submission`` is the
submission id (the notebook's file stem, or the student's folder in nbgrader's layout), ``identifier``
what the LMS knows the student by (Moodle: username, ID number or email, chosen when importing;
Canvas: SIS User ID).

Moodle's CSV grade import (grade/import/csv) maps one column to a user field and the others to grade
items or feedback. It aborts the whole import on an identifier it does not know, and a row with an
empty identifier is not skipped safely (it takes the previous row's student): so only roster students
go into the exports. Grades are plain numbers with a dot (``unformat_float``), an empty cell means no
grade. Canvas' gradebook import wants the columns ``Student, ID, SIS User ID, SIS Login ID, Section``
then one column per assignment.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..core import messages
from ..core.files import write_atomic
from ..core.results import GradeReport, Status

COLUMNS = ("submission", "identifier", "name", "email")
MOODLE = "grades_moodle.csv"
CANVAS = "grades_canvas.csv"
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


class RosterError(ValueError):
    """The roster file cannot be used (said in English, to the instructor)."""


@dataclass(frozen=True)
class Student:
    submission: str
    identifier: str
    name: str = ""
    email: str = ""


def key(submission: str) -> str:
    """Submission ids compared as text: macOS writes accents decomposed, other systems composed."""
    return unicodedata.normalize("NFC", submission).strip()


def load_roster(path: Path) -> list[Student]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")   # a spreadsheet's byte-order mark is not a column
    except (OSError, UnicodeDecodeError) as exc:
        raise RosterError(f"cannot read the roster {path}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise RosterError(f"{path}: the header must be {','.join(COLUMNS)} (missing: {', '.join(missing)})")
    students = [Student(*(row[c].strip() if row[c] else "" for c in COLUMNS)) for row in reader]
    for column in ("submission", "identifier"):
        values = [key(getattr(s, column)) for s in students]
        if "" in values:
            raise RosterError(f"{path}: line {values.index('') + 2} has no {column}")
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise RosterError(f"{path}: repeated {column}: {', '.join(repeated)}")
    return students


@dataclass(frozen=True)
class Matched:
    """The roster laid over the graded submissions."""
    student_of: dict[str, Student]    # submission id -> roster entry
    missing: list[Student]            # on the roster, no submission
    unknown: list[str]                # submitted, not on the roster


def match(students: list[Student] | None, submissions: list[str]) -> Matched:
    if students is None:    # no roster: every submission stands for itself
        return Matched({s: Student(s, s) for s in submissions}, [], [])
    by_key = {key(s.submission): s for s in students}
    student_of = {s: by_key[key(s)] for s in submissions if key(s) in by_key}
    found = {key(s) for s in student_of}
    return Matched(student_of, [s for s in students if key(s.submission) not in found],
                   [s for s in submissions if s not in student_of])


def _feedback(report: GradeReport | None) -> str:
    """The LMS feedback column, which students see: a missing copy or an incomplete grading, nothing else."""
    if report is None:
        return messages.FLAG_MISSING
    return "" if report.status == Status.OK else messages.STATUS_TEXT.get(report.status, str(report.status))


def _rows(matched: Matched, reports: list[GradeReport]) -> list[tuple[Student, GradeReport | None]]:
    graded = [(matched.student_of[r.submission], r) for r in reports if r.submission in matched.student_of]
    return sorted(graded + [(s, None) for s in matched.missing], key=lambda row: key(row[0].identifier))


def _csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _grade(report: GradeReport | None) -> str:
    return "" if report is None else f"{report.score:g}"


def write_exports(out: Path, assignment: str, matched: Matched, reports: list[GradeReport]) -> None:
    """``grades_moodle.csv`` (identifier, grade, feedback) and ``grades_canvas.csv``, roster students only."""
    rows = _rows(matched, reports)
    moodle = [["identifier", assignment, "feedback"]]
    moodle += [[s.identifier, _grade(r), _feedback(r)] for s, r in rows]
    write_atomic(out / MOODLE, _csv(moodle))
    canvas = [[*CANVAS_COLUMNS, assignment]]
    canvas += [[s.name or s.submission, "", s.identifier, s.email, "", _grade(r)] for s, r in rows]
    write_atomic(out / CANVAS, _csv(canvas))
