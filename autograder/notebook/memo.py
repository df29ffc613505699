"""Memo: the instructor's first cells, recorded once and replayed in each grading kernel.

Until the first question, a plan runs only the template's own cells (the mapping puts back
any instructor cell a student edited), so they compute the same thing for every student.
The grader records those that are slow once, in a kernel of their own (`recording_steps`,
then pipeline/memo.py), and each submission's plan replays them (`with_memo`): the same names
bound to the same values and the same printed text, without computing them again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

from .plan import STEPS_PER_EXECUTION, Step, StepKind, runtime_call, runtime_sources

# A cell is replayed only if running it took this long: a replay costs a few milliseconds.
MIN_SECONDS = 0.5
INDEX = "memo.json"
LIBRARIES = ("numpy", "scipy", "scikit-learn", "keras", "tensorflow", "ipykernel", "matplotlib")


@dataclass(frozen=True)
class CellMemo:
    key: str                                   # cell_key of the recorded cell
    pickle: str                                # file name in PrefixMemo.directory
    streams: tuple[tuple[str, str], ...]       # (stdout|stderr, text) the cell printed, in order


@dataclass(frozen=True)
class PrefixMemo:
    directory: Path
    prefix: tuple[str, ...]                    # cell keys of the prefix it was recorded behind, in order
    cells: dict[str, CellMemo]                 # key -> the cells worth replaying


def cell_key(step: Step) -> str:
    return f"{step.cell.master_id}:{hashlib.sha256(step.source.encode()).hexdigest()[:16]}"


def memo_key(template, seed: int, threads: int) -> str:
    """What the recording depends on: the template, the runtime, seed and threads, Python and the libraries."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    described = {"cells": [c.source for c in template.cells], "runtime": runtime_sources(), "python": sys.version,
                 "seed": seed, "threads": threads, "spe": STEPS_PER_EXECUTION,
                 "versions": versions}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:24]


def read_memo(directory: Path) -> PrefixMemo | None:
    index = json.loads((directory / INDEX).read_text())
    cells = {c["key"]: CellMemo(c["key"], c["pickle"], tuple(map(tuple, c["streams"]))) for c in index["cells"]}
    return PrefixMemo(directory, tuple(index["prefix"]), cells) if cells else None


def instructor_prefix(steps: list[Step]) -> list[int]:
    """Indexes of the plan's cells that run before anything a student wrote, or any question."""
    prefix = []
    for i, step in enumerate(steps):
        if step.kind == StepKind.PREAMBLE:
            continue
        if step.kind != StepKind.CELL or step.cell.role != "instructor" or step.question is not None:
            break
        prefix.append(i)
    return prefix


def recording_steps(steps: list[Step], directory: Path) -> list[Step]:
    """The preamble and the instructor prefix, each of its cells recorded into ``directory``."""
    recorded = [steps[0]]
    for i in instructor_prefix(steps):
        path = str(directory / f"{steps[i].position}.pkl")
        recorded += [Step(StepKind.MEMO, runtime_call("memo_snapshot")), steps[i],
                     Step(StepKind.MEMO, runtime_call("memo_record", path, MIN_SECONDS))]
    return recorded


def with_memo(steps: list[Step], memo: PrefixMemo, where: Path) -> list[Step]:
    """``steps`` with each recorded cell replayed from a copy in ``where`` (a directory the kernel can
    read), as long as every cell before it is the one the memo was recorded behind."""
    planned = list(steps)
    for n, i in enumerate(instructor_prefix(steps)):
        key = cell_key(steps[i])
        if n >= len(memo.prefix) or memo.prefix[n] != key:
            break
        cell = memo.cells.get(key)
        if cell is not None:
            target = where / cell.pickle
            shutil.copyfile(memo.directory / cell.pickle, target)
            planned[i] = replace(steps[i], source=runtime_call("memo_restore", str(target),
                                                                 [list(s) for s in cell.streams], steps[i].source))
    return planned
