"""Watchdog: the kernel's process tree watched, and killed whole past the memory or process limit; the
running cell's clock kept, and the cell interrupted when its time is up.

Memory is watched, not capped with RLIMIT_AS: TensorFlow maps far more virtual memory than it uses.

A cell's clock (`CellClock`) counts the time the kernel computed and the time it waited for anything but a
processor, not the time it was ready to run while other kernels had the processors: a grade must not depend on
how busy the grading machine was.  The runner keeps a wall-clock limit as a backstop (`execute.WALL_FACTOR`).
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
# A poll interval in which the tree used less than this share of one processor is time spent waiting (sleep,
# input, the network): it counts whole.  Otherwise only the processor time the tree got counts, at most the
# interval (TensorFlow's own threads do not make the clock run faster than the wall's).
IDLE_SHARE = 0.1
# How long a cell whose time is up has to answer the interrupt before its kernel is killed.
INTERRUPT_GRACE = 20.0


@dataclass
class CellClock:
    """The running cell's time, advanced by the watchdog at each poll."""
    limit: float
    seconds: float = 0.0
    last: tuple[float, float] | None = None     # (monotonic time, the tree's processor seconds) at the last poll
    expired_at: float | None = None             # when the cell was interrupted for its time

    def advance(self, now: float, cpu: float) -> None:
        if self.last is not None:
            wall, used = now - self.last[0], max(0.0, cpu - self.last[1])
            self.seconds += wall if used < IDLE_SHARE * wall else min(used, wall)
        self.last = (now, cpu)

    @property
    def expired(self) -> bool:
        return self.expired_at is not None


@dataclass
class Breach:
    kind: str        # "memory" or "processes"
    message: str     # French, for the student


def _summed(tree, measure) -> float:
    """``measure(process)`` summed over a process tree, those that ended meanwhile left out."""
    total = 0
    for proc in tree:
        try:
            total += measure(proc)
        except psutil.Error:
            pass
    return total


def _total(tree, kind: str) -> int:
    """Resident memory of a process tree.  RSS is cheap but counts the pages forked children
    share with their parent once per process; PSS (read only to confirm) splits them fairly."""
    def resident(proc) -> int:
        info = proc.memory_info() if kind == "rss" else proc.memory_full_info()
        return getattr(info, kind, info.rss)

    return _summed(tree, resident)


def _cpu_seconds(tree) -> float:
    """Processor seconds of a process tree, those of its children that ended and were waited for included."""
    return _summed(tree, lambda proc: sum(proc.cpu_times()[:4]))    # user, system, children's user and system


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
    """Kills the kernel's whole process tree when it exceeds the memory or process limit; interrupts the running
    cell when its clock passes its limit, and kills the tree when the interrupt is not obeyed."""

    def __init__(self, pid: int, limits: Limits):
        super().__init__(daemon=True, name=f"watchdog-{pid}")
        self.pid = pid
        self.memory = limits.memory_mb * 2**20
        self.limits = limits
        self.breach: Breach | None = None
        self.cell: CellClock | None = None
        self._stopping = threading.Event()   # not _stop: that would shadow Thread._stop, used by join()

    def stop(self) -> None:
        self._stopping.set()

    def time_cell(self, limit: float | None) -> CellClock | None:
        """Start the clock of a cell allowed ``limit`` seconds; None: no cell runs now."""
        self.cell = None if limit is None else CellClock(limit)
        return self.cell

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
            if self._time_up(tree):
                self._kill(tree, None)
                return

    def _time_up(self, tree) -> bool:
        """Advance the running cell's clock: interrupt the cell when its time is up; True when it ignored that."""
        cell, now = self.cell, time.monotonic()
        if cell is None:
            return False
        cell.advance(now, _cpu_seconds(tree))
        if cell.expired_at is None and cell.seconds > cell.limit:
            cell.expired_at = now
            # As Jupyter interrupts a kernel: SIGINT to its process group (the kernel leads its own session).
            try:
                os.killpg(self.pid, signal.SIGINT)
            except OSError:
                with contextlib.suppress(OSError):
                    os.kill(self.pid, signal.SIGINT)
        return cell.expired_at is not None and now - cell.expired_at > INTERRUPT_GRACE

    def _kill(self, tree, breach: Breach | None) -> None:
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
