"""Canary: one sandboxed kernel started before a batch.

A sandbox that cannot start is the grader's fault, not the students': rather than 200
submissions graded ``grader_error``, the batch stops before anything is written, with an
English error naming the step that failed.  The steps build the kernel's command line one
layer at a time (namespaces, then the file view, then the uid drop, then the interpreter,
then what the kernel must read, write and not see), then start a real kernel and run one
cell through the grader's own runner.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from ..core.config import Config
from ..core.mnist_data import ensure_mnist
from ..notebook.plan import Step, StepKind
from .execute import execute
from .confinement import FileView, submission_view
from .sandbox import SandboxLauncher, kernel_interpreter, run_probe

STEP_TEXT = {
    "limits": "starting a command under prlimit",
    "namespace": "creating the kernel's namespaces",
    "mount": "hiding the project, the inboxes, the output folder and /tmp, then binding back the venv, MNIST and "
             "the kernel's own directories",
    "uid": "dropping to the kernel's own uid",
    "interpreter path": "starting this Python interpreter inside the sandbox",
    "files": "reading MNIST, writing the work and capture directories and not seeing the project, from inside "
             "the sandbox",
    "kernel": "starting a Jupyter kernel in the sandbox and running one cell",
}

# Run by the kernel's interpreter inside the sandbox: argv = mnist, a file that must be hidden (or ""), writable dirs.
FILES_CHECK = """\
import os, sys
mnist, hidden, *writable = sys.argv[1:]
problems = []
try:
    open(mnist, "rb").read(1)
except OSError as exc:
    problems.append(f"cannot read MNIST: {exc}")
for directory in writable:
    probe = os.path.join(directory, ".autograder-canary")
    try:
        open(probe, "w").close()
        os.remove(probe)
    except OSError as exc:
        problems.append(f"cannot write {directory}: {exc}")
if hidden and os.path.exists(hidden):
    problems.append(f"sees {hidden}, which must be hidden")
import ipykernel
sys.exit("; ".join(problems) or None)
"""
CELL = "print('canary', 6 * 7)"


class SandboxError(Exception):
    """The sandbox could not start a kernel on this machine (English, for the instructor)."""

    def __init__(self, step: str, detail: str, summary: str):
        self.step, self.detail = step, detail
        super().__init__(f"the sandbox could not start a kernel: step '{step}' failed ({STEP_TEXT[step]}): "
                         f"{detail}\n{summary}\nNothing was graded and nothing was written to the output folder. "
                         "Run `autograder doctor` to see what this machine allows.")


def steps(launcher: SandboxLauncher, *, mnist: Path, hidden: Path, writable: tuple[str, ...]) -> list[tuple[str, list]]:
    """(step, command) pairs, each adding one layer of the kernel's real command line."""
    policy, view = launcher.policy, launcher.view
    empty = FileView((), (), ())
    run = [(("namespace" if policy.network_cut or policy.pid_namespace else "limits"), policy.prefix(empty) + ["true"])]
    if policy.files_hidden and view is not None:
        run.append(("mount", policy.prefix(view) + ["true"]))
    if launcher.user is not None:
        run.append(("uid", policy.prefix(view, launcher.user) + ["true"]))
    full = policy.prefix(view, launcher.user) + [kernel_interpreter()]
    run.append(("interpreter path", full + ["-c", "pass"]))
    secret = str(hidden) if policy.files_hidden else ""
    run.append(("files", full + ["-c", FILES_CHECK, str(mnist), secret, *writable]))
    return run


def canary(launcher: SandboxLauncher, *, work: Path, mnist: Path, hidden: Path) -> None:
    """Raise SandboxError unless a sandboxed kernel starts and runs a cell here; ``work`` is its working directory
    (one of the view's writable directories), ``hidden`` a file it must not see."""
    writable = launcher.view.writable if launcher.view is not None else (str(work),)
    for step, argv in steps(launcher, mnist=mnist, hidden=hidden, writable=writable):
        error = run_probe(argv)
        if error is not None:
            raise SandboxError(step, error, launcher.policy.summary())
    limits = replace(launcher.limits, max_kernel_restarts=0, cell_timeout=120, submission_timeout=240)
    log = work.parent / "canary-kernel.log"
    try:
        result = execute([Step(StepKind.CELL, CELL, None, None, 0)], work, limits, kernel_log=log,
                         launcher=SandboxLauncher(limits, launcher.view, launcher.policy))
        printed = "".join(o.get("text", "") for o in result.outputs.get(0, []))
        error = None if "canary 42" in printed else f"the cell printed {printed!r}; events: {result.events}"
    except Exception as exc:     # the kernel died before replying, or could not be reached
        error = f"{exc}"
    if error is not None:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.exists() else []
        raise SandboxError("kernel", error + ("\nkernel log:\n  " + "\n  ".join(tail) if tail else ""),
                           launcher.policy.summary())


def check_sandbox(config: Config, config_path: Path, paths: list[Path], out: Path) -> None:
    """Before a batch: one kernel sandboxed as a submission from ``paths`` graded into ``out`` would be (the same
    view and limits), in temporary directories; SandboxError when it cannot start.  Writes nothing to ``out``."""
    mnist = ensure_mnist().resolve()
    with tempfile.TemporaryDirectory(prefix="autograder-canary-") as tmp, \
            tempfile.TemporaryDirectory(prefix="autograder-capture-") as capture_root:
        work = Path(tmp).resolve() / "work"
        work.mkdir()
        inboxes = [p if p.is_dir() else p.parent for p in map(Path, paths)]
        view = submission_view(config, (*inboxes, out), writable=(work, Path(capture_root).resolve()), mnist=mnist)
        canary(SandboxLauncher(config.limits, view), work=work, mnist=mnist, hidden=config_path)
