"""Record the instructor's first cells once per grading machine (notebook/memo.py replays them).

The recording kernel runs the template alone, in the same sandbox as a student's, and its
pickles are only ever loaded by grading kernels: the grader reads nothing but its JSON
reports.  Recordings are kept beside the verified MNIST copy, under a key that changes with
anything that could change what the cells compute (template, runtime, seed, threads,
library versions), so a class pays for one recording, and later classes for none.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..core.config import Config
from ..core.files import write_atomic
from ..notebook.memo import INDEX, CellMemo, PrefixMemo, cell_key, instructor_prefix, memo_key, read_memo
from ..notebook.plan import preamble_source
from ..runner.confinement import submission_view
from ..runner.sandbox import SandboxLauncher
from .stages import Execute, Pipeline, Prepare, Record, Work

MEMO_DIR = "memo"
_loaded: dict[Path, PrefixMemo | None] = {}     # one recording (or none) per process and key


def prefix_memo(config: Config, template, mnist: Path, log=None) -> PrefixMemo | None:
    """The memo for ``config``'s released ``template``, recorded now if this machine has none; None if
    no cell could be recorded (everything then runs as written)."""
    key = memo_key(template, config.limits.seed, config.limits.threads)
    directory = _directory(Path(mnist).parent / MEMO_DIR / key)
    if directory not in _loaded:
        try:
            _loaded[directory] = read_memo(directory) if (directory / INDEX).exists() else _record(
                config, template, mnist, directory, log)
        # An aid, never a reason not to grade or export: RuntimeError is a kernel that never started.
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            if log:
                log(f"instructor cells not recorded: {exc!r}")
            _loaded[directory] = None
    return _loaded[directory]


def _directory(shared: Path) -> Path:
    """Beside MNIST, where every grader of the machine finds it; in the user's own cache when a grader
    that may not write there (an ordinary user, MNIST provisioned by root) finds none to read."""
    if os.access(shared / INDEX, os.R_OK):
        return shared
    existing = next(p for p in (shared.parent, *shared.parents) if p.exists())
    if os.access(existing, os.W_OK):
        return shared
    return Path.home() / ".cache" / "keras-mnist-autograder" / MEMO_DIR / shared.name


def _record(config: Config, template, mnist: Path, directory: Path, log) -> PrefixMemo | None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="autograder-memo-") as tmp, \
            tempfile.TemporaryDirectory(prefix="staging-", dir=directory.parent) as staging:
        work, out = Path(tmp).resolve() / "work", Path(tmp).resolve() / "memo"
        work.mkdir()
        out.mkdir()
        view = submission_view(config, (), writable=(work, out), mnist=mnist)
        recording = Pipeline(    # the template graded as its own submission, up to its first question
            Prepare(template, preamble_source(mnist, out / "capture", config.limits.seed, config.limits.threads)),
            Record(out),
            Execute(config.limits, SandboxLauncher(config.limits, view)))
        done = recording(Work(template, out / "capture", work))
        steps, result = done.prepared.steps, done.result
        if result.events or result.hidden_errors or result.restarts:
            if log:
                log(f"instructor cells not recorded: {[e.message for e in result.events] + result.hidden_errors}")
            return None
        cells = []
        for i in instructor_prefix(steps):
            cell = _recorded(steps[i], out, result.outputs.get(steps[i].position, []), Path(staging))
            if cell is not None:
                cells.append(cell)
        index = {"prefix": [cell_key(steps[i]) for i in instructor_prefix(steps)],
                 "cells": [{"key": c.key, "pickle": c.pickle, "streams": c.streams} for c in cells]}
        write_atomic(Path(staging) / INDEX, json.dumps(index, indent=1, ensure_ascii=False))
        _publish(Path(staging), directory)
    return read_memo(directory)


def _recorded(step, out: Path, outputs: list, staging: Path) -> CellMemo | None:
    """The cell's memo if the kernel recorded it and all it showed was printed text."""
    name = f"{step.position}.pkl"
    report = out / (name + ".json")
    if not report.exists() or json.loads(report.read_text()).get("refused") is not None:
        return None
    if any(o.get("output_type") != "stream" for o in outputs):
        return None
    shutil.copyfile(out / name, staging / name)
    return CellMemo(cell_key(step), name, tuple((o["name"], o["text"]) for o in outputs))


def _publish(staging: Path, directory: Path) -> None:
    """Atomically; a grader recording the same key at the same time published the same thing first."""
    for path in staging.iterdir():     # readable by graders running as other users, like MNIST
        path.chmod(0o644)
    staging.chmod(0o755)
    try:
        os.rename(staging, directory)
        staging.mkdir()     # for TemporaryDirectory's cleanup
    except OSError:
        if not (directory / INDEX).exists():
            raise

