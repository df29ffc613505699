"""Sandbox: how a student's kernel is launched and kept within its limits.

- `prlimit` sets resource limits on the kernel process: file size, CPU time, core
  dumps, and the number of processes (the kernel's user; not enforced for root).
- Memory is watched, not capped with RLIMIT_AS: TensorFlow maps far more virtual
  memory than it uses, so a watchdog sums the resident memory of the kernel's process
  tree and kills the tree past the limit.  The same watchdog bounds the number of
  processes, which also holds when the grader runs as root.
- `unshare --net` gives the kernel a network namespace of its own (no network at all)
  where the operating system allows it; the kernel then talks to the grader over IPC
  sockets instead of TCP.
- When the grader is root, the kernel drops to a uid of its own (`setpriv`, no new
  privileges, no groups) once the mounts are made: it cannot undo them, cannot read
  what only root may read, and RLIMIT_NPROC binds it.  The uid is a base plus the
  grader's pid, so concurrent kernels never share a uid, nor a process budget.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from ..core import messages
from ..core.config import Limits
from ..core.environment import kernel_env
from .launch import Launcher

POLL_SECONDS = 0.1


STAGING = "/mnt"     # an empty tmpfs is mounted here, inside the kernel's namespace only
KERNEL_UID_BASE = 2_000_000
TASKS_PER_PROCESS = 16    # RLIMIT_NPROC counts threads too: TensorFlow's pools fit well within this


@dataclass(frozen=True)
class KernelUser:
    uid: int
    gid: int


def kernel_user(limits: Limits) -> KernelUser | None:
    """The kernel's own unprivileged uid, where the grader is root and can hide and switch."""
    if not (limits.kernel_user and limits.isolate_filesystem and os.geteuid() == 0 and shutil.which("setpriv")
            and namespaces_available("--mount")):
        return None
    uid = KERNEL_UID_BASE + os.getpid()
    return KernelUser(uid, uid)


@functools.lru_cache(maxsize=4)
def namespaces_available(*flags: str) -> bool:
    """Whether `unshare` can create these namespaces here (root, or user namespaces allowed)."""
    unshare = shutil.which("unshare")
    if not unshare:
        return False
    try:
        return subprocess.run([unshare, *flags, "--", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def network_isolation() -> bool:
    return namespaces_available("--net")


@dataclass(frozen=True)
class FileView:
    """What the kernel may see of the filesystem: hidden trees, minus the paths kept."""
    hide: tuple[str, ...]
    read_only: tuple[str, ...]
    writable: tuple[str, ...]

    def usable(self) -> FileView:
        """Existing paths only; never hide the root, the staging area, or the interpreter unless kept."""
        ro = tuple(os.path.realpath(p) for p in self.read_only if os.path.exists(p))
        rw = tuple(os.path.realpath(p) for p in self.writable if os.path.exists(p))
        hide = [h for h in dict.fromkeys(os.path.realpath(p) for p in self.hide)
                if h != "/" and os.path.isdir(h) and not _inside(STAGING, h)
                and (not _inside(sys_base(), h) or sys_base() in ro)]
        # A tree inside another hidden tree is hidden with it (and has no mount point left), unless a
        # kept path between them brings it back into view: then it is hidden again inside that path.
        kept = ro + rw
        hide = [h for h in hide if not any(o != h and _inside(h, o) and not any(
            _inside(h, k) and _inside(k, o) for k in kept) for o in hide)]
        return FileView(tuple(hide), ro, rw)


def sys_base() -> str:
    return os.path.realpath(sys.base_prefix)


def _depth(path: str) -> int:
    return path.rstrip("/").count("/")


def _inside(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _mount_script(view: FileView, user: KernelUser | None) -> str:
    """Shell run as root inside the new mount namespace, before the kernel starts (as ``user``)."""
    keep = [(p, True) for p in view.read_only] + [(p, False) for p in view.writable]
    q = shlex.quote
    lines = ["set -e", "mount --make-rprivate /", f"mount -t tmpfs -o size=64k,mode=700 tmpfs {STAGING}"]
    for i, (path, _) in enumerate(keep):
        stage = f"{STAGING}/{i}"
        lines += [f"mkdir -p {stage}" if os.path.isdir(path) else f"touch {stage}", f"mount --bind {q(path)} {stage}"]
    # Outermost first, so a kept path inside a hidden tree, or a hidden tree (or a read-only path)
    # inside a kept one, is mounted over what contains it, never under.
    hides = [(h, None, False) for h in view.hide]
    binds = [(path, i, read_only) for i, (path, read_only) in enumerate(keep) if any(_inside(path, h) for h in view.hide)]
    for path, stage, read_only in sorted(hides + binds, key=lambda m: _depth(m[0])):
        if stage is None:
            lines.append(f"mount -t tmpfs -o size=16m,mode=755 tmpfs {q(path)}")
            continue
        make = f"mkdir -p {q(path)}" if os.path.isdir(path) else \
            f"mkdir -p {q(os.path.dirname(path))} && touch {q(path)}"
        lines += [make, f"mount --bind {STAGING}/{stage} {q(path)}"]
        if read_only:
            lines.append(f"mount -o remount,bind,ro {q(path)}")
    if user is None:
        return "\n".join(lines) + '\nexec "$@"'
    # Its own directories (work, capture, connection file and sockets) become the kernel user's.
    lines += [f"chown -R {user.uid}:{user.gid} {q(path)}" for path in view.writable]
    return "\n".join(lines) + (f'\nexec {shutil.which("setpriv")} --reuid={user.uid} --regid={user.gid} '
                               '--clear-groups --no-new-privs -- "$@"')


def kernel_prefix(limits: Limits, view: FileView | None = None, user: KernelUser | None = None) -> list[str]:
    """Command words put before the kernel's own command line."""
    prefix: list[str] = []
    flags = []
    if limits.isolate_network and network_isolation():
        flags.append("--net")
    if view is not None and user is not None:
        # The grader's home is hidden too; the interpreter is kept (pyenv may live in a 0700 home).
        view = replace(view, hide=view.hide + (os.path.expanduser("~"),), read_only=view.read_only + (sys_base(),))
    view = view.usable() if view is not None and limits.isolate_filesystem else None
    if view is not None and view.hide and namespaces_available("--mount"):
        flags.append("--mount")
    if flags:
        prefix += [shutil.which("unshare"), *flags, "--"]
    if "--mount" in flags:
        prefix += ["/bin/sh", "-c", _mount_script(view, user), "sandbox"]
    elif user is not None:
        raise ValueError("a kernel user needs the mount namespace")
    prlimit = shutil.which("prlimit")
    if prlimit:
        cpu = int(limits.submission_timeout * max(1, limits.threads) * 2)
        tasks = limits.max_processes * (TASKS_PER_PROCESS if user is not None else 1)
        prefix += [prlimit, f"--fsize={limits.max_file_mb * 2**20}", f"--cpu={cpu}", "--core=0",
                   f"--nproc={tasks}", "--"]
    return prefix


@dataclass
class Breach:
    kind: str        # "memory" or "processes"
    message: str     # French, for the student


def _total(tree, kind: str) -> int:
    """Resident memory of a process tree.  RSS is cheap but counts the pages forked children
    share with their parent once per process; PSS (read only to confirm) splits them fairly."""
    total = 0
    for proc in tree:
        try:
            info = proc.memory_info() if kind == "rss" else proc.memory_full_info()
            total += getattr(info, kind, info.rss)
        except psutil.Error:
            pass
    return total


class Watchdog(threading.Thread):
    """Kills the kernel's whole process tree when it exceeds the memory or process limit."""

    def __init__(self, pid: int, limits: Limits):
        super().__init__(daemon=True, name=f"watchdog-{pid}")
        self.pid = pid
        self.memory = limits.memory_mb * 2**20
        self.limits = limits
        self.breach: Breach | None = None
        self._stopping = threading.Event()   # not _stop: that would shadow Thread._stop, used by join()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stopping.wait(POLL_SECONDS):
            try:
                tree = [root] + root.children(recursive=True)
            except psutil.Error:
                return
            if len(tree) > self.limits.max_processes:
                self._kill(tree, Breach("processes", messages.too_many_processes(self.limits.max_processes)))
                return
            if _total(tree, "rss") > self.memory and _total(tree, "pss") > self.memory:
                self._kill(tree, Breach("memory", messages.out_of_memory(self.limits.memory_mb)))
                return

    def _kill(self, tree, breach: Breach) -> None:
        self.breach = breach
        for proc in tree:             # those that left the kernel's session too
            try:
                proc.kill()
            except psutil.Error:
                pass
        # The kernel leads its own session, so its process group also holds children
        # forked after the listing above; kill until the group is empty.
        for _ in range(50):
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            except PermissionError:
                return
            time.sleep(POLL_SECONDS / 2)


class SandboxLauncher(Launcher):
    """The grader's kernel: this very interpreter, behind `kernel_prefix`, watched by a `Watchdog`."""

    kernel_name = "autograder-python"

    def __init__(self, limits: Limits, view: FileView | None):
        self.limits = limits
        self.view = view
        self.user = kernel_user(limits) if view is not None else None

    def kernel_spec_dirs(self, scratch: Path) -> list[str]:
        """A kernelspec for this very interpreter (no other installed 'python3' is picked), sandboxed."""
        spec = scratch / "kernels" / self.kernel_name
        spec.mkdir(parents=True, exist_ok=True)
        view = self.view
        if view is not None:   # the kernel needs its own connection file and sockets, nothing else here
            view = replace(view, writable=view.writable + (str(scratch),))
        argv = kernel_prefix(self.limits, view, self.user) + [
            sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "autograder",
                                                      "language": "python"}))
        return [str(scratch / "kernels")]

    def env(self, workdir: Path) -> dict[str, str]:
        # Its dotfiles (IPython, Keras, Matplotlib) go to its scratch directory, never to a home.
        return dict(kernel_env(self.limits.threads), HOME=str(workdir))

    def ipc_path(self, scratch: Path) -> str | None:
        # No loopback inside the kernel's network namespace: talk over Unix sockets.
        return str(scratch / "ipc") if self.limits.isolate_network and network_isolation() else None

    def watch(self, pid: int) -> Watchdog:
        return Watchdog(pid, self.limits)
