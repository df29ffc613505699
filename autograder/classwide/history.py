"""History: every grade, rescore, override and regrade of a graded folder, one JSON line each in
``DIR/history.jsonl`` (time, command, grader version, rubric hash, what it changed)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..core.config import Config
from ..core.files import file_digest

FILE = "history.jsonl"


def rubric_hash(config: Config) -> str:
    """The rubric as graded: grading.toml's bytes."""
    return file_digest(config.path)[:16] if config.path else ""


def record(out: Path, config: Config, command: str, changed: dict[str, list[str]]) -> dict:
    """Append one entry: ``changed`` maps each submission it changed to the checks it changed ([] = all)."""
    entry = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
             "version": __version__, "rubric": rubric_hash(config), "changed": changed}
    path = Path(out) / FILE
    with open(path, "a", encoding="utf-8") as fh:      # one line, appended whole
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return entry


def read_history(out: Path) -> list[dict]:
    path = Path(out) / FILE
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue      # a line cut by a crash: the others stand
    return entries
