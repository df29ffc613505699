"""Report: one submission's results.json (Gradescope format), feedback.html and executed.ipynb.

Every file is written atomically (temporary file, then rename) so an interrupted batch
never leaves a half-written result behind.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import nbformat

from ..core.config import Config
from ..core.files import write_atomic
from ..core.mnist_data import Mnist
from ..core.results import GradeReport
from ..notebook.mapping import CellMap
from .feedback import render_feedback

PLAN_KEY = "autograder_plan"   # executed.ipynb cell metadata: role, question, exercise
RESULTS = "results.json"       # written last: its presence marks the submission as graded


def read_report(submission_dir: Path, config: Config) -> GradeReport | None:
    """A submission's report as last written, read back against ``config``'s rubric, named after its folder;
    None when there is none (never graded, or half a run that --resume grades again)."""
    try:
        data = json.loads((Path(submission_dir) / RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return replace(GradeReport.from_gradescope_dict(data, config), submission=Path(submission_dir).name)


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
                             executed: nbformat.NotebookNode | None, mnist: Mnist | None = None) -> None:
    if executed is not None:
        write_atomic(out_dir / "executed.ipynb", nbformat.writes(executed))
    write_atomic(out_dir / "feedback.html", render_feedback(config, report, mnist))
    # results.json last: its presence marks the submission as graded (resume relies on it).
    write_atomic(out_dir / RESULTS, json.dumps(report.to_gradescope_dict(), ensure_ascii=False, indent=1))
