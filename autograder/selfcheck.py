"""`autograder check`: a student runs the public checks on their notebook before handing it in.

Only checks marked visible in grading.toml run; hidden checks and their thresholds are
never run, named or hinted at, and the report says plainly that more tests run at
grading time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .config import Config
from .grade import Job, grade_submission
from .mnist_data import ensure_mnist

HIDDEN_NOTICE = ("Attention : ces vérifications publiques ne sont qu'une partie de la correction. "
                 "Des tests cachés seront exécutés lors de la correction : réussir toutes les "
                 "vérifications ci-dessus ne garantit pas la note maximale.")


def run_check(config: Config, config_path: Path, notebook: Path) -> list[str]:
    """Grade ``notebook`` with the public checks only; return the French report, line by line."""
    public = config.public()
    with tempfile.TemporaryDirectory(prefix="autograder-check-") as tmp:
        report = grade_submission(Job(Path(notebook), Path(notebook).stem, Path(tmp) / "check", config_path,
                                      ensure_mnist(), public_only=True))
    results = report.results
    lines = [f"Vérification de « {Path(notebook).name} » : tests publics uniquement", ""]
    if results["status"] == "invalid_notebook":
        return lines + [results["output"], "", HIDDEN_NOTICE]
    tests = {t["number"]: t for t in results["tests"]}
    for q in public.questions:
        passed = sum(tests[c.number]["status"] == "passed" for c in q.checks)
        lines.append(f"Question {q.id} — {q.title} : {passed}/{len(q.checks)} vérification(s) réussie(s)")
        for event in results["events"]:
            if event["question"] == q.id and event["kind"] != "error":
                lines.append(f"  ! {event['message']}")
        for c in q.checks:
            t = tests[c.number]
            if t["status"] == "passed":
                lines.append(f"  ✔ {c.number} {c.description}")
            else:
                lines.append(f"  ✘ {c.number} {c.description}")
                lines.append(f"      → à corriger : {t['output']}")
        lines.append("")
    for note in results["notes"]:
        lines.append(f"Remarque : {note}")
    return lines + [HIDDEN_NOTICE]
