"""Report: results.json (Gradescope format), feedback.html, executed.ipynb, grades.csv, summary.json.

Every file is written atomically (temporary file, then rename) so an interrupted batch
never leaves a half-written result behind.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..core.codegen import TEMPLATES
from ..core.config import Config
from ..core.files import write_atomic
from ..runner.execute import Event
from ..notebook.mapping import CellMap
from ..runner.scoring import CheckOutcome

STATUS_TEXT = {
    "ok": "correction complète",
    "timeout": "une partie du notebook a dépassé le temps imparti",
    "kernel_died": "le noyau Python s'est arrêté pendant l'exécution",
    "budget": "le temps total alloué au notebook a été épuisé",
    "invalid_notebook": "le fichier rendu n'est pas un notebook valide",
    "grader_error": "erreur interne du correcteur",
}


@dataclass
class GradeReport:
    submission: str
    status: str
    results: dict
    notes: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return self.results["score"]

    def question_scores(self, config: Config) -> dict[str, float]:
        scores = {q: 0.0 for q in config.question_ids}
        for t in self.results["tests"]:
            scores[t["number"].split(".")[0]] += t["score"]
        return scores


def build_results(config: Config, submission: str, status: str, outcomes: dict[str, CheckOutcome] | None,
                  events: list[Event], notes: list[str], failure: str | None = None) -> GradeReport:
    """Every rubric check appears, with score 0 where it could not run, so totals compare."""
    tests = []
    for check in config.checks:
        outcome = (outcomes or {}).get(check.number)
        passed = bool(outcome and outcome.passed)
        if outcome is not None:
            output = outcome.message
        else:
            output = f"Non évaluée : {failure}." if failure else "Non évaluée."
        tests.append({
            "name": f"{check.number} {check.description}",
            "number": check.number,
            "score": check.points if passed else 0.0,
            "max_score": check.points,
            "output": "Réussie." if passed else output,
            "visibility": "visible" if check.visibility == "visible" else "after_published",
            "status": "passed" if passed else "failed",
        })
    event_lines = [e.message[0].upper() + e.message[1:] + "." for e in events]
    results = {
        "score": round(sum(t["score"] for t in tests), 4),
        "max_score": sum(c.points for c in config.checks),
        "status": status,
        "submission": submission,
        "output": "\n".join(event_lines + [f"Remarque : {n}" for n in notes]),
        "events": [{"kind": e.kind, "question": e.question, "message": e.message} for e in events],
        "notes": notes,
        "tests": tests,
    }
    if failure:
        results["output"] = (f"Copie non corrigée : {failure}.\n" + results["output"]).strip()
    return GradeReport(submission, status, results, notes)


def render_feedback(config: Config, report: GradeReport) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(["html", "j2"]))
    r = report.results
    questions = []
    for q in config.questions:
        tests = [dict(t, passed=t["status"] == "passed",
                      description=next(c.description for c in q.checks if c.number == t["number"]))
                 for t in r["tests"] if t["number"].split(".")[0] == q.id]
        questions.append({
            "id": q.id, "title": q.title, "tests": tests,
            "score": sum(t["score"] for t in tests), "max_score": q.points,
            "events": [e["message"][0].upper() + e["message"][1:] + "." for e in r["events"]
                       if e["question"] == q.id],
        })
    r_view = dict(r, assignment=config.name, submission=report.submission, notes=list(r["notes"]) + [
        e["message"] for e in r["events"] if e["question"] is None])
    if r["status"] == "invalid_notebook":
        r_view["notes"].insert(0, r["output"])
    return env.get_template("feedback.html.j2").render(r=r_view, questions=questions,
                                                       status_text=STATUS_TEXT.get(r["status"], r["status"]))


def _trim(outputs: list, limit: int) -> list:
    trimmed = []
    for out in outputs:
        out = nbformat.from_dict(out)
        if out.get("output_type") == "stream" and len(out.get("text", "")) > limit:
            out["text"] = out["text"][:limit] + f"\n[… sortie tronquée à {limit} caractères …]\n"
        elif out.get("output_type") in ("execute_result", "display_data"):
            for mime, value in list(out.get("data", {}).items()):
                if isinstance(value, str) and len(value) > limit:
                    out["data"][mime] = value[:limit] + "\n[… tronqué …]"
        elif out.get("output_type") == "error":
            out["traceback"] = [line[:limit] for line in out.get("traceback", [])[-50:]]
        trimmed.append(out)
    return trimmed


def executed_notebook(original: nbformat.NotebookNode, cell_map: CellMap, outputs: dict[int, list],
                      counts: dict[int, int | None], limit: int) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(metadata=original.get("metadata", {}))
    for pos, planned in enumerate(cell_map.cells):
        src_cell = original.cells[planned.student_index] if planned.student_index is not None else None
        if planned.cell_type == "code":
            cell = nbformat.v4.new_code_cell(planned.source)
            cell.outputs = _trim(outputs.get(pos, []), limit)
            cell.execution_count = counts.get(pos)
        elif planned.cell_type == "markdown":
            cell = nbformat.v4.new_markdown_cell(planned.source)
        else:
            cell = nbformat.v4.new_raw_cell(planned.source)
        if src_cell is not None:
            cell.metadata = nbformat.from_dict(src_cell.get("metadata", {}))
        nb.cells.append(cell)
    return nb


def write_submission_reports(out_dir: Path, config: Config, report: GradeReport,
                             executed: nbformat.NotebookNode | None) -> None:
    if executed is not None:
        write_atomic(out_dir / "executed.ipynb", nbformat.writes(executed))
    write_atomic(out_dir / "feedback.html", render_feedback(config, report))
    # results.json last: its presence marks the submission as graded (resume relies on it).
    write_atomic(out_dir / "results.json", json.dumps(report.results, ensure_ascii=False, indent=1))


def write_batch_reports(out: Path, config: Config, reports: list[GradeReport], ignored: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", *config.question_ids, "total", "status"])
    for r in sorted(reports, key=lambda r: r.submission):
        scores = r.question_scores(config)
        writer.writerow([r.submission, *(f"{scores[q]:g}" for q in config.question_ids), f"{r.score:g}", r.status])
    write_atomic(out / "grades.csv", buf.getvalue())
    summary = {
        "assignment": config.name,
        "max_score": sum(c.points for c in config.checks),
        "submissions": len(reports),
        "statuses": {s: sum(1 for r in reports if r.status == s) for s in sorted({r.status for r in reports})},
        "mean_score": round(sum(r.score for r in reports) / len(reports), 4) if reports else None,
        "ignored_files": ignored,
        "grades": {r.submission: {"score": r.score, "status": r.status} for r in reports},
    }
    write_atomic(out / "summary.json", json.dumps(summary, ensure_ascii=False, indent=1))
