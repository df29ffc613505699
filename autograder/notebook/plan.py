"""Instrument: turn mapped cells into an execution plan with hidden grader steps.

The plan is the planned cells in order, plus hidden steps the student never sees:
a preamble before everything (offline MNIST, seeds, thread caps, call recording),
``begin(q)`` before a question's first cell and ``capture(q)`` after its last one,
so each question's artifacts are exported before later questions reassign ``model``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ..core.modules import import_order, module_file
from .mapping import CellMap, PlannedCell

SKIP_TAG = "otter_ignore"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
RUNTIME_PACKAGE = "kernel.runtime"          # shipped into the kernel as sources, there the package RUNTIME_MODULE
RUNTIME_MODULE = "_autograder_runtime"
SYNTAX_ERRORS = ("SyntaxError", "IndentationError", "TabError")   # a cell that raised these never ran
# Batches per call into TensorFlow in the fits the runtime may accelerate (kernel/runtime/acceleration.py);
# beyond this the measured gain is nil and the progress bar only gets coarser.
STEPS_PER_EXECUTION = 128


class StepKind(StrEnum):
    PREAMBLE = "preamble"      # the hidden first cell: offline MNIST, seeds, the recorder
    BEGIN = "begin"            # before a question's cells
    CELL = "cell"              # a cell of the notebook
    CAPTURE = "capture"        # after a question's last cell: its artifacts exported
    MEMO = "memo"              # only while recording the instructor's first cells (memo.py)


@dataclass(frozen=True)
class Step:
    kind: StepKind
    source: str
    question: str | None = None
    cell: PlannedCell | None = None
    position: int | None = None   # index of the cell in CellMap.cells

    @property
    def hidden(self) -> bool:
        return self.kind != StepKind.CELL


def runtime_modules() -> list[str]:
    """The runtime package's modules, each after those it imports (its relative imports say which), the
    package's own __init__ (RUNTIME_PACKAGE) last: what the kernel needs, nothing listed by hand."""
    order = import_order(PACKAGE_DIR, [RUNTIME_PACKAGE])
    outside = [name for name in order if name != RUNTIME_PACKAGE and not name.startswith(RUNTIME_PACKAGE + ".")]
    if outside:
        raise ValueError(f"the kernel runtime imports modules it does not ship: {outside}")
    return order


def runtime_name(module: str) -> str:
    """A runtime module's name in the runtime package: "boot" for kernel.runtime.boot, "__init__" for its own."""
    return module[len(RUNTIME_PACKAGE) + 1:] or "__init__"


def runtime_sources() -> list[tuple[str, str]]:
    """(runtime_name, source) of each of the runtime's modules, in runtime_modules' order."""
    return [(runtime_name(name), module_file(PACKAGE_DIR, name).read_text(encoding="utf-8"))
            for name in runtime_modules()]


def preamble_source(mnist_path: Path, capture_dir: Path, seed: int, threads: int, *, accelerate: bool = True,
                    **extra) -> str:
    """The hidden first cell; ``accelerate`` False runs every fit exactly as the student wrote it."""
    config = {"mnist": str(mnist_path), "capture_dir": str(capture_dir), "seed": seed, "threads": threads,
              "steps_per_execution": STEPS_PER_EXECUTION if accelerate else 0, **extra}
    # The runtime lives in its own package, not in the student's namespace.  Each module is made as the
    # import system makes it (in sys.modules, an attribute of the package), so that its relative imports
    # resolve in the kernel as they do in the grader's package.
    package = RUNTIME_MODULE
    return "\n".join([
        "def _autograder_boot(sources, config):",
        "    import sys, types",
        f"    package = sys.modules[{package!r}] = types.ModuleType({package!r})",
        f"    package.__path__, package.__package__ = [], {package!r}",
        "    for name, source in sources:     # each after those it imports, the package's own source last",
        "        module = package",
        "        if name != '__init__':",
        f"            module = sys.modules[{package + '.'!r} + name] = types.ModuleType({package + '.'!r} + name)",
        f"            module.__package__ = {package!r}",
        "            setattr(package, name, module)",
        f"        exec(compile(source, '<{package}.' + name + '>', 'exec'), module.__dict__)",
        "    package.install(config)",
        # JSON decoded in the kernel, not pasted as Python: true/false/null are not Python names.
        f"_autograder_boot({runtime_sources()!r}, __import__('json').loads({json.dumps(config)!r}))",
        "del _autograder_boot",
    ])


def runtime_call(fn: str, *args) -> str:
    return f"__import__({RUNTIME_MODULE!r}).{fn}({', '.join(map(repr, args))})"


def should_run(cell: PlannedCell) -> bool:
    return cell.cell_type == "code" and SKIP_TAG not in cell.tags and bool(cell.source.strip())


def build_plan(cell_map: CellMap, preamble: str) -> list[Step]:
    steps = [Step(StepKind.PREAMBLE, preamble)]
    runnable = [(i, c) for i, c in enumerate(cell_map.cells) if should_run(c)]
    last_of = {}
    for i, c in runnable:
        if c.question:
            last_of[c.question] = i
    current = None
    for i, c in runnable:
        # The recorder tells the exercise cell's calls (and its given lines) from those of cells a student
        # added: a question is graded on the model its own cell works on.
        if c.question is not None and (c.question, c.exercise) != current:
            given = list(cell_map.given.get(c.question, ())) if c.exercise else []
            steps.append(Step(StepKind.BEGIN, runtime_call("begin", c.question, c.exercise, given), c.question))
        current = (c.question, c.exercise)
        steps.append(Step(StepKind.CELL, c.source, c.question, c, i))
        if c.question is not None and last_of[c.question] == i:
            steps.append(Step(StepKind.CAPTURE, runtime_call("capture", c.question), c.question))
            current = None
    return steps
