"""Intake: find the submissions in what the instructor passes, and give each its id.

Accepted: notebooks; folders searched recursively; nbgrader's exchange layout
``submitted/<student>/<assignment>/*.ipynb`` (the id is the student's folder); zips as
``otter`` exports them (the id is the zip's stem).  Other files are listed, not graded.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..core import messages

MAX_NOTEBOOK_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Found:
    path: Path                  # the notebook to grade (extracted, for a zip)
    id: str
    error: str | None = None    # French: why it cannot be graded


def _nbgrader_student(path: Path) -> str | None:
    parts = path.parts
    for i in range(len(parts) - 3, -1, -1):
        if parts[i] == "submitted" and len(parts) - i == 4:
            return parts[i + 1]
    return None


def _from_zip(path: Path, extract_dir: Path, index: int) -> Found:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist()
                       if m.filename.endswith(".ipynb") and not m.is_dir()
                       and "__MACOSX" not in m.filename and ".ipynb_checkpoints" not in m.filename]
            if not members:
                return Found(path, path.stem, messages.ZIP_WITHOUT_NOTEBOOK)
            member = min(members, key=lambda m: (m.filename.count("/"), m.filename))
            if member.file_size > MAX_NOTEBOOK_BYTES:
                return Found(path, path.stem, messages.ZIP_NOTEBOOK_TOO_LARGE)
            target = extract_dir / str(index) / PurePosixPath(member.filename).name
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(target, "wb") as out:
                out.write(src.read(MAX_NOTEBOOK_BYTES + 1))
            return Found(target, path.stem)
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError):
        return Found(path, path.stem, messages.ZIP_UNREADABLE)


def find_submissions(paths: list[Path], extract_dir: Path) -> tuple[list[Found], list[Path]]:
    files: list[Path] = []
    ignored: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                if ".ipynb_checkpoints" in f.parts:
                    continue
                (files if f.suffix in (".ipynb", ".zip") else ignored).append(f)
        else:
            files.append(path)
    found = []
    for index, f in enumerate(files):
        if f.suffix == ".zip":
            found.append(_from_zip(f, extract_dir, index))
        else:
            found.append(Found(f, _nbgrader_student(f) or f.stem))
    return _unique(found), ignored


def _unique(found: list[Found]) -> list[Found]:
    """Ids stay as given; a repeated one gets the first numeric suffix that no other submission has
    (not even one really named ``devoir-2``), so no report is overwritten."""
    given = {f.id for f in found}
    used: set[str] = set()
    out = []
    for f in found:
        new_id, n = f.id, 1
        while new_id in used or (n > 1 and new_id in given):
            n += 1
            new_id = f"{f.id}-{n}"
        used.add(new_id)
        out.append(f if new_id == f.id else Found(f.path, new_id, f.error))
    return out
