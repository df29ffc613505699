"""The class's grade files: grades.csv (one row per submission) and summary.json.

Written atomically, like every report: an interrupted batch never leaves a half-written file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..core.config import Config
from ..core.files import write_atomic
from ..core.results import GradeReport


def write_grades(out: Path, config: Config, reports: list[GradeReport], ignored: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", *config.question_ids, "total", "status"])
    for r in sorted(reports, key=lambda r: r.submission):
        scores = r.question_scores()
        writer.writerow([r.submission, *(f"{scores[q]:g}" for q in config.question_ids), f"{r.score:g}", r.status])
    write_atomic(out / "grades.csv", buf.getvalue())
    summary = {
        "assignment": config.name,
        "max_score": sum(c.points for c in config.checks),
        "submissions": len(reports),
        "statuses": {s: sum(1 for r in reports if r.status == s) for s in sorted({r.status for r in reports})},
        "mean_score": round(sum(r.score for r in reports) / len(reports), 4) if reports else None,
        "ignored_files": ignored,
        # How the kernels were isolated in this batch: one entry per distinct mechanism (SECURITY.md).
        "sandbox": [json.loads(s) for s in sorted({json.dumps(r.sandbox, sort_keys=True) for r in reports
                                                   if r.sandbox is not None})],
        "grades": {r.submission: {"score": r.score, "status": r.status} for r in reports},
    }
    write_atomic(out / "summary.json", json.dumps(summary, ensure_ascii=False, indent=1))
