"""Release: the student notebook, generated from the master with nbgrader's own preprocessors.

The chain mirrors ``nbgrader generate_assignment`` minus its gradebook steps, so the
master stays valid nbgrader source and both tools produce the same student notebook.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import nbformat
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    LockCells,
)
from nbgrader.preprocessors.base import NbGraderPreprocessor
from traitlets import List, Unicode

from ..core.config import Config
from ..student.bundle import SCRIPT_NAME, render_script

KEPT_CELL_METADATA = ("nbgrader", "autograder", "otter", "tags", "editable", "deletable", "trusted")


class StripMetadata(NbGraderPreprocessor):
    """Keep only the cell metadata that maps cells to questions and locks them."""

    keep = List(Unicode(), default_value=list(KEPT_CELL_METADATA)).tag(config=True)

    def preprocess(self, nb, resources):
        nb.metadata = nbformat.from_dict(
            {k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language_info")}
        )
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        cell.metadata = nbformat.from_dict({k: v for k, v in cell.metadata.items() if k in self.keep})
        return cell, resources


def preprocessors(placeholder: str) -> list:
    # Same order as nbgrader's GenerateAssignment, without its gradebook (SaveCells) step.
    return [
        StripMetadata(),
        LockCells(),
        ClearSolutions(code_stub={"python": placeholder}, text_stub=placeholder),
        ClearOutput(),
        CheckCellMetadata(),
        ComputeChecksums(),
        ClearHiddenTests(),
        ClearMarkScheme(),
        ComputeChecksums(),
        CheckCellMetadata(),
    ]


def make_student_notebook(master: nbformat.NotebookNode, placeholder: str) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(master)  # deep copy: the master is never touched
    resources: dict = {}
    for pp in preprocessors(placeholder):
        nb, resources = pp.preprocess(nb, resources)
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def release(config: Config, out: Path | None = None) -> Path:
    """Write the student notebook, then the public check script next to it (rendered from it)."""
    master = nbformat.read(config.master, as_version=4)
    nb = make_student_notebook(master, config.placeholder)
    target = Path(out) / config.student.name if out else config.student
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(nb), encoding="utf-8")
    released = replace(config, student=target)
    (target.parent / SCRIPT_NAME).write_text(render_script(released), encoding="utf-8")
    return target
