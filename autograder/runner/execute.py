"""Execute: run an execution plan in a fresh Jupyter kernel with nbclient.

Failures cost the question they happen in, never the whole submission: a timeout
interrupts the cell, and a kernel that dies (or ignores the interrupt) is replaced by
a new one into which the instructor cells and earlier questions are replayed, skipping
the question that failed.  Each such event is reported in French.
"""

from __future__ import annotations

import copy
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from ..core import messages
from ..core.config import Limits
from ..core.results import Event, EventKind, Status
from ..notebook.plan import SYNTAX_ERRORS, Step, StepKind
from .launch import Launcher, Watcher
from .outputs import BoundedOutputClient

TIMEOUT_ENAME = "AutograderCellTimeout"
PROBE_TIMEOUT = 20
# A watched cell's wall-clock limit, as a multiple of its time limit: a backstop, its watcher's clock decides.
WALL_FACTOR = 3


class Ran(StrEnum):
    """How running one step ended, for the runner: go on, replace the kernel, or stop (budget spent)."""
    OK = "ok"
    DEAD = "dead"
    BUDGET = "budget"


@dataclass
class ExecutionResult:
    outputs: dict[int, list] = field(default_factory=dict)       # planned position -> outputs
    execution_counts: dict[int, int | None] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    failed_questions: set[str] = field(default_factory=set)
    ran_questions: set[str] = field(default_factory=set)     # at least one cell compiled and ran
    hidden_errors: list[str] = field(default_factory=list)
    restarts: int = 0
    duration: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)   # stage -> wall time (see Runner._stage)

    @property
    def status(self) -> Status:
        kinds = {e.kind for e in self.events}
        for kind in (EventKind.KERNEL_DIED, EventKind.BUDGET, EventKind.TIMEOUT):
            if kind in kinds:
                return Status(kind)
        return Status.OK


class Runner:
    def __init__(self, steps: list[Step], workdir: Path, limits: Limits, *, kernel_log: Path | None = None,
                 launcher: Launcher | None = None):
        self.steps = steps
        self.workdir = Path(workdir)
        self.kernel_log = kernel_log
        self.launcher = launcher or Launcher()
        self.limits = limits
        self.result = ExecutionResult()
        self.nb = nbformat.v4.new_notebook()
        self.nb.cells = [nbformat.v4.new_code_cell(s.source) for s in steps]
        self.skipped: set[int] = set()       # step indexes never to run (again)
        self.last_reply: dict = {}
        self._specs = tempfile.TemporaryDirectory(prefix="autograder-kernelspec-", dir=self.launcher.scratch_root())
        self.deadline = 0.0
        self.watchdog: Watcher | None = None

    # --- kernel sessions -------------------------------------------------------------
    def _client(self) -> NotebookClient:
        scratch = Path(self._specs.name)
        dirs = self.launcher.kernel_spec_dirs(scratch)
        ksm = KernelSpecManager(kernel_dirs=dirs) if dirs is not None else KernelSpecManager()
        # nbclient drives the kernel asynchronously: a blocking manager would hang on timeouts.
        km = AsyncKernelManager(kernel_name=self.launcher.kernel_name, kernel_spec_manager=ksm)
        km.provisioner = self.launcher.provisioner(km)
        # Kept beside the kernelspec, not in Jupyter's shared runtime directory (hidden from kernels).
        km.connection_file = str(scratch / f"connection-{os.getpid()}-{time.monotonic_ns()}.json")
        ipc = self.launcher.ipc_path(scratch)
        if ipc is not None:
            km.transport, km.ip = "ipc", ipc
        client = BoundedOutputClient(
            self.nb, km=km, timeout=int(self.limits.cell_timeout), allow_errors=True, shutdown_kernel="immediate",
            interrupt_on_timeout=True, startup_timeout=120,
            error_on_timeout={"ename": TIMEOUT_ENAME, "evalue": "timeout", "traceback": []},
            resources={"metadata": {"path": str(self.workdir)}},
        )
        client.on_cell_executed = self._on_executed
        client.output_limit = self.limits.output_limit
        return client

    def _on_executed(self, cell, cell_index, execute_reply):
        self.last_reply = execute_reply.get("content", {}) if execute_reply else {}

    def run(self) -> ExecutionResult:
        start = time.monotonic()
        self.deadline = start + self.limits.submission_timeout
        index = 0
        try:
            while index is not None and index < len(self.steps):
                index = self._session(index)
        finally:
            self._specs.cleanup()
            self.result.duration = time.monotonic() - start
        for i, step in enumerate(self.steps):
            if step.kind == StepKind.CELL:
                cell = self.nb.cells[i]
                self.result.outputs[step.position] = cell.get("outputs", [])
                self.result.execution_counts[step.position] = cell.get("execution_count")
        return self.result

    def _session(self, start: int) -> int | None:
        """Run steps from ``start`` in a new kernel; return where the next session resumes."""
        client = self._client()
        # The kernel's own stderr (TensorFlow logs, crashes) goes to a log, not the grader's terminal.
        log = self.launcher.log(self.kernel_log)
        started = time.monotonic()
        try:
            with client.setup_kernel(env=self.launcher.env(self.workdir), cwd=str(self.workdir), cleanup_kc=True,
                                     stdout=log, stderr=log):
                self._count("kernel start", started)
                self.watchdog = self.launcher.watch(client.km.provisioner.pid)
                if self.watchdog is not None:
                    self.watchdog.start()
                try:
                    return self._run_from(client, start)
                finally:
                    if self.watchdog is not None:
                        self.watchdog.stop()
        finally:
            if log is not subprocess.DEVNULL:
                log.close()

    def _run_from(self, client: NotebookClient, start: int) -> int | None:
        if start > 0:
            resume = self._replay(client, start)
            if resume is not None:
                return resume
        for i in range(start, len(self.steps)):
            if i in self.skipped:
                continue
            outcome = self._run_step(client, i)
            if outcome is Ran.BUDGET:
                return None
            if outcome is Ran.DEAD:
                return self._after_failure(i)
        return None

    def _replay(self, client: NotebookClient, upto: int) -> int | None:
        """Rebuild the kernel's state: preamble, instructor cells, earlier questions."""
        saved = copy.deepcopy(self.nb.cells[:upto])
        try:
            for i in range(upto):
                step = self.steps[i]
                if i in self.skipped or step.kind in (StepKind.BEGIN, StepKind.CAPTURE):
                    continue
                if step.question in self.result.failed_questions:
                    continue
                outcome = self._run_step(client, i, replay=True)
                if outcome is not Ran.OK:
                    self.result.hidden_errors.append(f"replay stopped at step {i} ({outcome})")
                    self.skipped.add(i)
                    return None if outcome is Ran.BUDGET else self._after_failure(i)
        finally:
            self.nb.cells[:upto] = saved
        return None

    # --- one step ----------------------------------------------------------------------
    def _run_step(self, client: NotebookClient, i: int, replay: bool = False) -> Ran:
        step = self.steps[i]
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self._budget_exhausted(i)
            return Ran.BUDGET
        # A watched cell's time is its clock's (watchdog.CellClock); the wall-clock limit is only a backstop.
        wall = self.limits.cell_timeout * (WALL_FACTOR if self.watchdog is not None else 1)
        client.timeout = int(max(1, min(wall, remaining)))
        self.last_reply = {}
        client.reset_outputs()
        started = time.monotonic()
        clock = self.watchdog.time_cell(self.limits.cell_timeout) if self.watchdog is not None else None
        try:
            client.execute_cell(self.nb.cells[i], i)
            self._count(self._stage(step, replay), started)
        except DeadKernelError:
            if clock is not None and clock.expired:      # it ignored the interrupt: killed
                self._timed_out(i, self.limits.cell_timeout, replay)
                return Ran.DEAD
            breach = self.watchdog.breach if self.watchdog else None
            return self._dead(i, breach.message if breach else messages.KERNEL_CRASHED)
        except CellTimeoutError:
            return self._dead(i, messages.KERNEL_UNRESPONSIVE)
        finally:
            if self.watchdog is not None:
                self.watchdog.time_cell(None)
        error = self.last_reply.get("status") == "error"
        expired = clock is not None and clock.expired      # interrupted by the watchdog for its time
        if self.last_reply.get("ename") == TIMEOUT_ENAME or (error and expired):
            if time.monotonic() >= self.deadline:
                self._budget_exhausted(i)
                return Ran.BUDGET
            self._timed_out(i, self.limits.cell_timeout if expired else client.timeout, replay)
            return Ran.OK if self._responsive(client) else Ran.DEAD
        if step.hidden and error:
            self.result.hidden_errors.append(
                f"{step.kind} {step.question or ''}: {self.last_reply.get('ename')}: {self.last_reply.get('evalue')}")
        elif step.kind == StepKind.CELL and not replay:
            ename = self.last_reply.get("ename")
            if step.question and ename not in SYNTAX_ERRORS:
                self.result.ran_questions.add(step.question)
            if error:
                evalue = str(self.last_reply.get("evalue", ""))[:300]
                self.result.events.append(Event(EventKind.ERROR, step.question,
                                                messages.CELL_ERROR.format(
                                                    where=messages.where(step.question), ename=ename, evalue=evalue)))
        return Ran.OK

    @staticmethod
    def _stage(step: Step, replay: bool) -> str:
        """Where a step's time is counted, for the benchmark's breakdown (timings.json)."""
        if replay:
            return "replay"
        if step.kind in (StepKind.PREAMBLE, StepKind.CAPTURE):
            return step.kind
        return step.question or "instructor cells"

    def _count(self, stage: str, started: float) -> None:
        self.result.seconds[stage] = self.result.seconds.get(stage, 0.0) + time.monotonic() - started

    def _responsive(self, client: NotebookClient) -> bool:
        probe = nbformat.v4.new_code_cell("pass")
        saved_timeout = client.timeout
        client.timeout = PROBE_TIMEOUT
        try:
            scratch = copy.deepcopy(self.nb)
            client.nb = scratch
            scratch.cells.append(probe)
            client.execute_cell(probe, len(scratch.cells) - 1)
            return self.last_reply.get("ename") != TIMEOUT_ENAME
        except (DeadKernelError, CellTimeoutError):
            return False
        finally:
            client.nb = self.nb
            client.timeout = saved_timeout

    def _timed_out(self, i: int, seconds: float, replay: bool) -> None:
        self._fail(i, EventKind.TIMEOUT, messages.CELL_TIMEOUT.format(
            where=messages.where(self.steps[i].question), seconds=int(seconds)), replay)

    def _dead(self, i: int, why: str) -> Ran:
        step = self.steps[i]
        self._fail(i, EventKind.KERNEL_DIED, messages.KERNEL_DIED.format(
            where=messages.where(step.question), why=why), False)
        return Ran.DEAD

    def _fail(self, i: int, kind: EventKind, message: str, replay: bool) -> None:
        step = self.steps[i]
        if step.question in self.result.failed_questions and step.question is not None:
            return
        if replay:
            message += messages.DURING_REPLAY
        self.result.events.append(Event(kind, step.question, message))
        if step.question is not None:
            self.result.failed_questions.add(step.question)
            # The rest of a failed question, its capture included, never runs.
            for j in range(i + 1, len(self.steps)):
                if self.steps[j].question == step.question:
                    self.skipped.add(j)

    def _after_failure(self, i: int) -> int | None:
        self.skipped.add(i)
        self.result.restarts += 1
        if self.result.restarts > self.limits.max_kernel_restarts:
            for step in self.steps[i + 1:]:
                if step.kind == StepKind.CAPTURE and step.question not in self.result.failed_questions:
                    self.result.failed_questions.add(step.question)
                    self.result.events.append(Event(EventKind.KERNEL_DIED, step.question,
                                                    messages.TOO_MANY_RESTARTS.format(question=step.question)))
            return None
        return i + 1

    def _budget_exhausted(self, i: int) -> None:
        pending = []
        for step in self.steps[i:]:
            if step.question and step.question not in self.result.failed_questions and step.question not in pending:
                pending.append(step.question)
        for q in pending:
            self.result.failed_questions.add(q)
            self.result.events.append(Event(EventKind.BUDGET, q, messages.QUESTION_OUT_OF_BUDGET.format(
                question=q, seconds=int(self.limits.submission_timeout))))
        if not pending:
            self.result.events.append(Event(EventKind.BUDGET, None, messages.BUDGET_EXHAUSTED))


def execute(steps: list[Step], workdir: Path, limits: Limits, *, kernel_log: Path | None = None,
            launcher: Launcher | None = None) -> ExecutionResult:
    """Run ``steps``; without a launcher, in the plain installed kernel (as on a student's machine)."""
    return Runner(steps, workdir, limits, kernel_log=kernel_log, launcher=launcher).run()
