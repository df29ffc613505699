"""Load: read one submission file into a notebook, or say in French why it cannot be graded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import nbformat.reader

from ..core import messages


class InvalidNotebook(Exception):
    """The file is not a gradable notebook; the message is French, for the student."""


@dataclass
class Submission:
    id: str                  # file stem, unchanged (spaces and accents included)
    path: Path
    notebook: nbformat.NotebookNode | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def read_notebook(path: Path) -> tuple[nbformat.NotebookNode, list[str]]:
    notes: list[str] = []
    raw = path.read_bytes()
    if not raw.strip():
        raise InvalidNotebook(messages.FILE_EMPTY)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidNotebook(messages.FILE_NOT_UTF8) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidNotebook(messages.INVALID_JSON.format(line=exc.lineno)) from None
    if not isinstance(data, dict) or ("cells" not in data and "worksheets" not in data):
        raise InvalidNotebook(messages.NOT_A_NOTEBOOK)
    try:
        if data.get("nbformat") == 4:
            nb = nbformat.from_dict(data)    # cells are normalised one by one below
        else:
            nb = nbformat.reader.reads(text)     # rejoins the line lists nbformat 3 stores
            nb = nbformat.convert(nb, 4)
            notes.append(messages.CONVERTED_FROM.format(version=data.get('nbformat')))
    except Exception:  # nbformat raises many kinds on malformed input
        raise InvalidNotebook(messages.OLD_FORMAT_UNCONVERTIBLE) from None
    if not isinstance(nb.get("cells"), list):
        raise InvalidNotebook(messages.NO_CELL_LIST)
    if not isinstance(nb.get("metadata"), dict):
        nb["metadata"] = nbformat.NotebookNode()
    if not nb.cells:
        raise InvalidNotebook(messages.NO_CELLS)
    seen: set[str] = set()
    for i, cell in enumerate(nb.cells):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise InvalidNotebook(messages.INVALID_CELL.format(number=i + 1))
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(map(str, cell["source"]))
        if not isinstance(cell.get("source", ""), str):
            raise InvalidNotebook(messages.INVALID_CELL_CONTENT.format(number=i + 1))
        cell.setdefault("source", "")
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"] = nbformat.NotebookNode()
        if cell.get("id") is not None and cell.get("id") in seen:
            notes.append(messages.DUPLICATE_CELL_IDS)
            cell["id"] = f"cell-{i}"
        seen.add(cell.get("id"))
    try:
        nbformat.validate(nb)    # ids are already unique: nothing random is repaired here
    except Exception:
        notes.append(messages.LOOSE_FORMAT)
    notes[:] = list(dict.fromkeys(notes))
    return nb, notes


def load_submission(path: Path) -> Submission:
    sub = Submission(id=path.stem, path=path)
    try:
        sub.notebook, sub.notes = read_notebook(path)
    except InvalidNotebook as exc:
        sub.error = str(exc)
    except OSError as exc:
        sub.error = messages.UNREADABLE_FILE.format(reason=exc.strerror)
    return sub

