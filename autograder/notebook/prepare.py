"""Prepare: a submission's cells mapped onto the template and planned behind the hidden preamble.

`autograder grade`, verifier.py and otter compose these stages the same way, and give the
same reason for a question that did not run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import nbformat

from ..core import messages
from .mapping import CellMap, map_cells, template_cells
from .plan import Step, build_plan


@dataclass(frozen=True)
class Prepared:
    cell_map: CellMap
    steps: list[Step]
    notes: list[str]      # French, for the student: what the mapping noticed, missed or put back


def mapping_notes(cell_map: CellMap) -> list[str]:
    missing = [messages.NO_CELL_FOR.format(question=q) for q in cell_map.missing_questions]
    restored = [messages.GIVEN_CELL_RESTORED.format(grade_id=c.master_id) for c in cell_map.cells if c.restored and c.student_index is not None]
    return cell_map.notes + missing + restored


def prepare(submission: nbformat.NotebookNode, template: nbformat.NotebookNode,
            preamble: str | Callable[[CellMap], str]) -> Prepared:
    """Map, then plan; ``preamble`` may be built from the map (otter's names the questions that cannot run)."""
    cell_map = map_cells(submission, template_cells(template))
    source = preamble(cell_map) if callable(preamble) else preamble
    return Prepared(cell_map, build_plan(cell_map, source), mapping_notes(cell_map))


def not_run_reasons(cell_map: CellMap, questions: Iterable[str], *, ran: set[str], placeholder: str,
                    failed: dict[str, str] | None = None) -> dict[str, str]:
    """``failed`` (why questions failed while running), plus why each question that never ran was not graded."""
    reasons = dict(failed or {})
    for q in questions:
        if q not in ran:
            reasons.setdefault(q, cell_map.not_run_reason(q, placeholder))
    return reasons
