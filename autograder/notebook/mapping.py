"""Map a submission's cells to the released notebook's: instructor cells, question cells, free cells.

Metadata is used first (nbgrader ``grade_id``, our ``autograder.question``).  Editors
such as Colab or VS Code may drop or rewrite it, so unlabelled cells are then placed
by content and by position relative to the instructor cells around them: a cell
belongs to the question whose cell it follows.

The reference is the released student notebook, never the master: instructor cells are
the same in both and solutions are never needed, so the otter export and the public
check script can map submissions without carrying any solution.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import nbformat

from ..core import messages

MARKDOWN_SIMILARITY = 0.85
CODE_SIMILARITY = 0.95


@dataclass(frozen=True)
class MasterCell:
    position: int
    grade_id: str
    cell_type: str
    source: str                # what the student received
    question: str | None       # set on question cells
    tags: tuple[str, ...] = ()

    @property
    def instructor(self) -> bool:
        return self.question is None


@dataclass
class PlannedCell:
    """One cell of the notebook as it will run."""
    cell_type: str
    source: str
    role: str                  # "instructor", "question" or "free"
    question: str | None = None
    student_index: int | None = None   # None for instructor cells the student deleted
    master_id: str | None = None
    tags: tuple[str, ...] = ()
    restored: bool = False     # instructor source differed and was put back
    exercise: bool = False     # the student's version of the question's own cell (not a cell they added)


@dataclass
class CellMap:
    cells: list[PlannedCell]
    missing_questions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    given: dict[str, tuple[str, ...]] = field(default_factory=dict)   # question -> code lines the template gives

    def question_cells(self, question: str) -> list[PlannedCell]:
        return [c for c in self.cells if c.question == question]

    def not_run_reason(self, question: str, placeholder: str) -> str:
        """French: why a question none of whose cells could run was not graded."""
        if question in self.missing_questions:
            return messages.QUESTION_MISSING
        if any(placeholder in c.source for c in self.question_cells(question)):
            return messages.QUESTION_NOT_COMPLETED.format(placeholder=placeholder)
        return messages.QUESTION_SYNTAX


def _meta_str(cell, section: str, key: str) -> str | None:
    """A string from cell metadata; anything else (students' editors write odd things) is ignored."""
    block = cell.get("metadata", {}).get(section)
    value = block.get(key) if isinstance(block, dict) else None
    return value if isinstance(value, str) else None


def question_of(cell) -> str | None:
    return _meta_str(cell, "autograder", "question")


def grade_id_of(cell) -> str | None:
    return _meta_str(cell, "nbgrader", "grade_id")


def template_cells(template: nbformat.NotebookNode) -> list[MasterCell]:
    """The reference cells, read from the released student notebook."""
    return [
        MasterCell(
            position=pos,
            grade_id=grade_id_of(t) or f"cell-{pos}",
            cell_type=t.cell_type,
            source=t.source,
            question=question_of(t),
            tags=tuple(t.get("metadata", {}).get("tags", [])),
        )
        for pos, t in enumerate(template.cells)
    ]


def _norm(src: str) -> str:
    return "\n".join(line.rstrip() for line in str(src).strip().splitlines())


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, _norm(a), _norm(b), autojunk=False).ratio()


def _label(cell, masters: list[MasterCell]) -> MasterCell | None:
    by_id = {m.grade_id: m for m in masters}
    q = question_of(cell)
    gid = grade_id_of(cell)
    for key in (gid, q):
        m = by_id.get(key) if key else None
        if m is not None and m.cell_type == cell.get("cell_type"):
            return m
    src = _norm(cell.get("source", ""))
    instructors = [m for m in masters if m.instructor and m.cell_type == cell.get("cell_type")]
    for m in instructors:
        if _norm(m.source) == src:
            return m
    threshold = MARKDOWN_SIMILARITY if cell.get("cell_type") == "markdown" else CODE_SIMILARITY
    best = max(instructors, key=lambda m: _similarity(m.source, src), default=None)
    if best is not None and src and _similarity(best.source, src) >= threshold:
        return best
    return None


def _question_before(masters: list[MasterCell], position: int) -> str | None:
    """The question whose cell precedes ``position`` with only markdown in between."""
    for m in reversed(masters[: position + 1]):
        if m.question:
            return m.question
        if m.cell_type == "code":
            return None
    return None


def map_cells(submission: nbformat.NotebookNode, masters: list[MasterCell]) -> CellMap:
    cells = list(submission.cells)
    labels = [_label(c, masters) for c in cells]
    claimed = {m.question for m in labels if m is not None and m.question}
    notes: list[str] = []

    planned: list[PlannedCell] = []
    for j, (cell, label) in enumerate(zip(cells, labels)):
        ctype = cell.get("cell_type", "code")
        if label is not None and label.instructor:
            restored = ctype == "code" and _norm(cell.get("source", "")) != _norm(label.source)
            planned.append(PlannedCell(ctype, label.source, "instructor", None, j, label.grade_id,
                                       label.tags, restored))
            continue
        if label is not None:
            planned.append(PlannedCell(ctype, cell.get("source", ""), "question", label.question, j,
                                       label.grade_id, exercise=True))
            continue
        question = _place(j, cells, labels=labels, masters=masters, claimed=claimed) if ctype == "code" else None
        planned.append(PlannedCell(ctype, cell.get("source", ""), "question" if question else "free",
                                   question, j))

    _reinsert_deleted_instructor_cells(planned, masters, notes)
    present = {c.question for c in planned if c.question}
    missing = [m.question for m in masters if m.question and m.question not in present]
    for m in masters:
        if m.question in present:
            _mark_exercise(planned, m)
    given = {m.question: given_lines(m.source) for m in masters if m.question}
    return CellMap(planned, missing, notes, given)


def given_lines(source: str) -> tuple[str, ...]:
    """The code lines of a question cell that the template already gives (the placeholder never runs)."""
    lines = (line.strip() for line in source.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def _mark_exercise(planned: list[PlannedCell], master: MasterCell) -> None:
    """When an editor dropped the metadata, the exercise cell is the question's cell closest to the template's."""
    cells = [c for c in planned if c.question == master.question and c.cell_type == "code"]
    if cells and not any(c.exercise for c in cells):
        max(cells, key=lambda c: _similarity(master.source, c.source)).exercise = True


def _place(j, cells, *, labels, masters, claimed) -> str | None:
    prev = next((labels[i] for i in range(j - 1, -1, -1) if labels[i] is not None), None)
    nxt = next((labels[i] for i in range(j + 1, len(cells)) if labels[i] is not None), None)
    if prev is not None and prev.question:
        return prev.question
    lo = prev.position if prev is not None else -1
    hi = nxt.position if nxt is not None else len(masters)
    gap = [m for m in masters if m.question and lo < m.position < hi and m.question not in claimed]
    if len(gap) == 1:
        return gap[0].question
    if gap:
        src = cells[j].get("source", "")
        return max(gap, key=lambda m: _similarity(m.source, src)).question
    return _question_before(masters, lo) if lo >= 0 else None


def _reinsert_deleted_instructor_cells(planned: list[PlannedCell], masters: list[MasterCell], notes) -> None:
    present = {c.master_id for c in planned if c.master_id}
    position = {m.grade_id: m.position for m in masters}
    for m in masters:
        if not m.instructor or m.cell_type != "code" or m.grade_id in present:
            continue
        at = 0
        for k, c in enumerate(planned):
            if c.master_id in position and position[c.master_id] < m.position:
                at = k + 1
        planned.insert(at, PlannedCell("code", m.source, "instructor", None, None, m.grade_id, m.tags, True))
        notes.append(messages.GIVEN_CELL_REINSERTED.format(grade_id=m.grade_id))
