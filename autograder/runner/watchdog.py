"""Watchdog: the kernel's process tree watched, and killed whole past the memory or process limit.

Memory is watched, not capped with RLIMIT_AS: TensorFlow maps far more virtual memory than it uses.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass

import psutil

from ..core import messages
from ..core.config import Limits


POLL_SECONDS = 0.1


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


def _children_pids(pid: int) -> list[int] | None:
    """The pids of ``pid``'s children as its threads' /proc children files list them; None when the
    kernel has no such files.  Ten times a second per kernel, this reads the tree's own files only,
    where psutil reads every process's stat on the machine (a cost that grows with the host's load)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    pids = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += map(int, f.read().split())
        except OSError:
            if not os.path.exists(f"/proc/{pid}/task/{task}"):
                continue        # a thread that ended meanwhile
            return None         # no CONFIG_PROC_CHILDREN, or not readable here: psutil's way then
    return pids


def descendants(root: psutil.Process) -> list[psutil.Process]:
    """Every process below ``root``; a child forked while this runs is found at the next poll."""
    if not root.is_running():
        raise psutil.NoSuchProcess(root.pid)
    found, todo = [], [root.pid]
    while todo:
        pids = _children_pids(todo.pop())
        if pids is None:
            return root.children(recursive=True)
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                found.append(psutil.Process(pid))
                todo.append(pid)
    return found


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
                tree = [root] + descendants(root)
            except psutil.Error:
                return
            if len(tree) > self.limits.max_processes:
                self._kill(tree, Breach(
                    "processes", messages.TOO_MANY_PROCESSES.format(limit=self.limits.max_processes)))
                return
            if _total(tree, "rss") > self.memory and _total(tree, "pss") > self.memory:
                self._kill(tree, Breach("memory", messages.OUT_OF_MEMORY.format(limit_mb=self.limits.memory_mb)))
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
