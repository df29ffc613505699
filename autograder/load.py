"""Load: read one submission file into a notebook, or say in French why it cannot be graded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.validator import NotebookValidationError


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
        raise InvalidNotebook("le fichier est vide")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidNotebook("le fichier n'est pas un texte UTF-8 (fichier binaire ou mal encodé)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidNotebook(f"le fichier n'est pas un JSON valide (ligne {exc.lineno}) : notebook tronqué ou corrompu") from None
    if not isinstance(data, dict) or ("cells" not in data and "worksheets" not in data):
        raise InvalidNotebook("le fichier JSON n'est pas un notebook Jupyter (aucune liste de cellules)")
    try:
        nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
        if nb.get("nbformat", 4) != 4:
            nb = nbformat.convert(nb, 4)
            notes.append("notebook converti depuis le format nbformat 3")
    except Exception as exc:  # nbformat raises many kinds on malformed input
        raise InvalidNotebook(f"le notebook n'a pas pu être lu ({type(exc).__name__})") from None
    if not isinstance(nb.get("cells"), list):
        raise InvalidNotebook("le notebook ne contient pas de liste de cellules")
    if not nb.cells:
        raise InvalidNotebook("le notebook ne contient aucune cellule")
    for cell in nb.cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise InvalidNotebook("le notebook contient une cellule invalide")
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
        cell.setdefault("metadata", nbformat.NotebookNode())
        cell.setdefault("source", "")
    try:
        nbformat.validate(nb)
    except NotebookValidationError:
        notes.append("le notebook ne respecte pas exactement le format nbformat ; il a été corrigé au mieux")
    return nb, notes


def load_submission(path: Path) -> Submission:
    sub = Submission(id=path.stem, path=path)
    try:
        sub.notebook, sub.notes = read_notebook(path)
    except InvalidNotebook as exc:
        sub.error = str(exc)
    except OSError as exc:
        sub.error = f"le fichier n'a pas pu être lu ({exc.strerror})"
    return sub


def find_notebooks(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Notebooks to grade, and the other files found in the given folders (ignored)."""
    notebooks, ignored = [], []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                if ".ipynb_checkpoints" in f.parts:
                    continue
                (notebooks if f.suffix == ".ipynb" else ignored).append(f)
        else:
            notebooks.append(path)
    return notebooks, ignored
