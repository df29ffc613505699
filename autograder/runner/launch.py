"""Launch: how the runner starts a kernel and watches it.

The runner asks its launcher for the kernelspec, the environment, the transport and a
watcher.  This module's `Launcher` is the plain kernel of a student's machine (the
self-check, through `verifier.py`): the installed ``python3`` kernel, no limits, no
watcher, so it needs nothing beyond nbclient.  The grader's sandboxed launcher
(`runner.sandbox.SandboxLauncher`) overrides each of these.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Protocol

from ..core.environment import SILENT, process_env


class Watcher(Protocol):
    """Watches a running kernel; ``breach`` says, in French, why it killed the kernel (or None)."""
    breach: object | None

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def time_cell(self, limit: float | None): ...


class Launcher:
    """A plain kernel: the student's own installed ``python3``, its stderr discarded."""

    kernel_name = "python3"

    def kernel_spec_dirs(self, scratch: Path) -> list[str] | None:
        """Where the kernelspec lives (written under ``scratch``), or None for the installed ones."""
        return None

    def env(self, workdir: Path) -> dict[str, str]:
        # On the student's machine BLAS threads and the hash seed are left as they are (the
        # runtime still seeds and caps TensorFlow's threads).
        return process_env(SILENT, PYTHONWARNINGS="ignore")

    def ipc_path(self, scratch: Path) -> str | None:
        """The IPC socket prefix when the kernel cannot use TCP on loopback, else None."""
        return None

    def watch(self, pid: int) -> Watcher | None:
        return None

    def scratch_root(self) -> Path | None:
        """Where the kernelspec, connection file and sockets go (a fresh directory inside), None: the system's."""
        return None

    def provisioner(self, km):
        """The Jupyter provisioner that starts ``km``'s kernel; None: Jupyter's own, launching the kernelspec."""
        return None

    def log(self, kernel_log: Path | None):
        """Where the kernel's own stdout and stderr go."""
        return open(kernel_log, "ab") if kernel_log else subprocess.DEVNULL
