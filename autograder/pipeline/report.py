"""Report: one submission's results.json (Gradescope format), feedback.html and executed.ipynb.

Every file is written atomically (temporary file, then rename) so an interrupted batch
never leaves a half-written result behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..core.codegen import TEMPLATES
from ..core.config import Config
from ..core.files import write_atomic
from ..core import messages
from ..core.results import GradeReport, Status
from ..notebook.mapping import CellMap

PLAN_KEY = "autograder_plan"   # executed.ipynb cell metadata: role, question, exercise


def render_feedback(config: Config, report: GradeReport) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    questions = [{
        "id": q.id, "title": q.title, "score": q.score, "max_score": q.max_score, "checks": q.checks,
        "events": [messages.sentence(e.message) for e in report.events if e.question == q.id],
    } for q in report.questions]
    notes = list(report.notes) + [e.message for e in report.events if e.question is None]
    if report.status == Status.INVALID_NOTEBOOK:
        notes.insert(0, report.output)
    return env.get_template("feedback.html.j2").render(
        r=report, assignment=config.name, notes=notes, questions=questions,
        status_text=messages.STATUS_TEXT.get(report.status, report.status))


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


def executed_notebook(original: nbformat.NotebookNode, cell_map: CellMap, *, outputs: dict[int, list],
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
        # Where the cell stands in the plan: the class report reads what each student wrote from it.
        cell.metadata[PLAN_KEY] = {"role": planned.role, "question": planned.question, "exercise": planned.exercise}
        nb.cells.append(cell)
    return nb


def write_submission_reports(out_dir: Path, config: Config, report: GradeReport,
                             executed: nbformat.NotebookNode | None) -> None:
    if executed is not None:
        write_atomic(out_dir / "executed.ipynb", nbformat.writes(executed))
    write_atomic(out_dir / "feedback.html", render_feedback(config, report))
    # results.json last: its presence marks the submission as graded (resume relies on it).
    write_atomic(out_dir / "results.json", json.dumps(report.to_gradescope_dict(), ensure_ascii=False, indent=1))
