"""Grade one submission: load, then the grading composition of the stages (stages.py), then its report.

load → Prepare (map cells, plan) → Replay → Execute (sandboxed) → NotRun → StopKernels → ScoreApart → Keep → report
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import nbformat

from ..core import messages
from ..core.config import Config, LimitOverrides, load_config
from ..core.files import write_atomic
from ..core.mnist_data import shared_mnist
from ..core.results import GradeReport, QuestionMeasurement, Status
from ..notebook.load import load_submission
from ..notebook.plan import preamble_source
from ..runner.forked import ForkedLauncher, ForkServerError, KernelForkServer, fork_server
from ..runner.confinement import submission_view
from ..runner.sandbox import SandboxLauncher, SandboxPolicy
from ..runner.scoring import STORED_ARTIFACTS, score, warm_up
from .keep import STORE, keep
from .memo import prefix_memo
from .report import executed_notebook, write_submission_reports
from .stages import Execute, NotRun, Pipeline, Prepare, Replay, Work

CAPTURE = "capture"


@dataclass(frozen=True)
class Job:
    path: Path
    submission_id: str
    out_dir: Path
    config_path: Path
    mnist: Path
    overrides: LimitOverrides = LimitOverrides()
    intake_error: str | None = None     # French: why intake could not even find a notebook
    public_only: bool = False           # the student self-check: visible checks only
    accelerate: bool = True             # False: fits and scoring exactly as without acceleration


def grade_submission(job: Job) -> GradeReport:
    config = load_config(job.config_path)
    config = replace(config, limits=job.overrides.apply(config.limits))
    if job.public_only:
        config = config.public()
    out = job.out_dir
    out.mkdir(parents=True, exist_ok=True)
    # A zip that held no readable notebook has nothing to load.
    error, sub = (job.intake_error, None) if job.intake_error else (None, load_submission(job.path))
    error = error or sub.error
    if error:
        report = GradeReport.of(config, job.submission_id, Status.INVALID_NOTEBOOK, notes=sub.notes if sub else [],
                                failure=messages.INVALID_FILE.format(error=error))
        write_submission_reports(out, config, report, None)
        return report
    try:
        return _grade_notebook(config, job, sub)
    except Exception:  # our own bug: the batch goes on and the instructor sees why
        return grader_error(config, job.submission_id, job.out_dir, traceback.format_exc(), notes=sub.notes)


@dataclass(frozen=True)
class StopKernels:
    """Nothing the kernels started may still run while their captures are scored."""
    server: KernelForkServer | None
    log: object

    def __call__(self, work: Work) -> Work:
        if self.server is not None:
            try:
                self.server.stop_kernels()
            except ForkServerError as exc:
                self.log(f"kernel fork server: {exc}; its namespace was killed")
        return work


@dataclass(frozen=True)
class ScoreApart:
    """The hidden suite over the captures, in the clean scoring process (runner/scoring.py), from a directory
    created only now that the kernel is gone, so nothing it wrote can pose as a result."""
    config: Config
    config_path: Path
    log_to: Path                  # the folder that gets scoring.log
    public_only: bool = False
    warm: bool = True

    def __call__(self, work: Work) -> Work:
        """Scores from the capture, or from ``work.artifacts`` when given; the artifacts scoring computed are
        stored into ``work.artifacts`` (not for the public checks alone, which measure less)."""
        with tempfile.TemporaryDirectory(prefix="autograder-scoring-") as scoring:
            started = time.monotonic()
            given = None
            if work.artifacts is not None:
                given = Path(scoring) / "given.json"
                given.write_text(work.artifacts, encoding="utf-8")
            scores = score(self.config, work.capture, work.failed, Path(scoring), config_path=self.config_path,
                           public_only=self.public_only, warm=self.warm, artifacts=given,
                           store_artifacts=given is None and not self.public_only)
            if work.result is not None:
                work.result.seconds["scoring"] = time.monotonic() - started
            log, computed = Path(scoring) / "scoring.log", Path(scoring) / STORED_ARTIFACTS
            if log.exists():
                shutil.copy(log, self.log_to / "scoring.log")
            artifacts = computed.read_text(encoding="utf-8") if computed.exists() else work.artifacts
        return replace(work, scores=scores, artifacts=artifacts)


@dataclass(frozen=True)
class Keep:
    """What scoring read, kept beside the reports for `autograder rescore` (keep.py)."""
    job: Job
    config: Config

    def __call__(self, work: Work) -> Work:
        keep(work.capture, work.failed, self.job.out_dir, self.job.out_dir.parent / STORE, self.config,
             work.artifacts)
        return work


def _grade_notebook(config: Config, job: Job, sub) -> GradeReport:
    template = nbformat.read(config.student, as_version=4)
    result_log: list[str] = []     # the grader's own troubles with this submission, for grader_log.txt
    view = submission_view(config, (job.path.parent, job.out_dir.parent), writable=(), mnist=job.mnist)
    policy = SandboxPolicy.detect(config.limits)
    server, server_start = _warm_up(policy, view, config, job, result_log.append)
    memo = prefix_memo(config, template, job.mnist, log=result_log.append) if job.accelerate else None
    with tempfile.TemporaryDirectory(prefix="autograder-") as tmp, \
            _workspace(server, result_log.append) as (scratch, capture_root):
        view = replace(view, writable=(str(scratch), str(capture_root)))
        launcher = ForkedLauncher(config.limits, view, server) if server else SandboxLauncher(config.limits, view,
                                                                                               policy)
        kernel_log = Path(tmp) / "kernel.log"
        grading = Pipeline(
            Prepare(template, preamble_source(job.mnist, capture_root / CAPTURE, config.limits.seed,
                                              config.limits.threads, accelerate=job.accelerate)),
            memo and Replay(memo, capture_root),
            Execute(config.limits, launcher, kernel_log),
            NotRun(config.question_ids, config.placeholder),
            StopKernels(server, result_log.append),
            ScoreApart(config, job.config_path, job.out_dir, job.public_only, job.accelerate),
            None if job.public_only else Keep(job, config))
        work = grading(Work(sub.notebook, capture_root / CAPTURE, scratch, notes=tuple(sub.notes)))
        _keep_tail(kernel_log, job.out_dir / "kernel.log")
    result, scores = work.result, work.scores
    if server_start >= 0.1:
        result.seconds["fork server start"] = server_start
    # The instructor's log: hidden steps that failed, and checks the grader itself could not run.
    log = result_log + result.hidden_errors + [f"check {n}: {o.internal}"
                                               for n, o in scores.outcomes.items() if o.internal]
    if log:
        write_atomic(job.out_dir / "grader_log.txt", "\n".join(log) + "\n")
    report = GradeReport.of(config, job.submission_id, result.status, scores.outcomes, events=result.events,
                            notes=list(work.notes) + measurement_notes(scores.measurements),
                            measurements=scores.measurements, duration_s=round(result.duration, 1),
                            kernel_restarts=result.restarts,
                            sandbox=dict(launcher.policy.isolation(), forked=server is not None))
    executed = executed_notebook(sub.notebook, work.prepared.cell_map, outputs=result.outputs,
                                 counts=result.execution_counts, limit=config.limits.output_limit)
    write_submission_reports(job.out_dir, config, report, executed, shared_mnist(job.mnist.parent))
    _write_timings(job.out_dir, result.seconds)
    return report


def measurement_notes(measurements: dict[str, QuestionMeasurement]) -> list[str]:
    """French notes on what scoring found about the inputs: said, not guessed."""
    notes = []
    for q, measured in measurements.items():
        if measured.test_inputs == "not_genuine":
            notes.append(messages.TEST_INPUTS_NOT_GENUINE.format(question=q))
        if measured.unreadable:   # the instructor may want to look at this training
            notes.append(messages.TRAINING_DATA_UNEXAMINED.format(
                question=q, what=" ; ".join(measured.unreadable)))
    return notes


def _warm_up(policy: SandboxPolicy, view, config: Config, job: Job, log) -> tuple[KernelForkServer | None, float]:
    """When accelerated: the warm scoring process (importing TensorFlow while the fork server and the kernel run)
    and this process's fork server, with the seconds it took (about none but for a grading process's first)."""
    if not job.accelerate:
        return None, 0.0
    warm_up()
    started = time.monotonic()
    server = fork_server(policy, view, config.limits, log=log)
    return server, time.monotonic() - started


@contextmanager
def _workspace(server: KernelForkServer | None, log):
    """The kernel's working directory and the directory its captures go to: the fork server's slot, emptied
    afterwards, or fresh temporary directories.  The working directory holds nothing but what the kernel writes;
    the captures live elsewhere, out of reach of `rm -rf ..`.  Real paths: the kernel must reach them without
    passing through a tree it does not see."""
    if server is not None:
        try:
            yield server.work, server.capture
        finally:
            try:
                server.clear()
            except (OSError, ForkServerError) as exc:
                log(f"kernel fork server: {exc}; a new one will start")
        return
    with tempfile.TemporaryDirectory(prefix="autograder-") as tmp, \
            tempfile.TemporaryDirectory(prefix="autograder-capture-") as capture_root:
        scratch = Path(tmp).resolve() / "work"
        scratch.mkdir()
        yield scratch, Path(capture_root).resolve()


def _write_timings(out_dir: Path, seconds: dict[str, float]) -> None:
    """Where this submission's grading time went, stage by stage (read by `make bench`)."""
    write_atomic(out_dir / "timings.json", json.dumps({k: round(v, 3) for k, v in seconds.items()}, indent=1))


def grader_error(config: Config, submission_id: str, out_dir: Path, why: str, notes=()) -> GradeReport:
    """The report of a submission the grader itself failed on; ``why`` (English) for the instructor."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "grader_error.txt", why)
    report = GradeReport.of(config, submission_id, Status.GRADER_ERROR, notes=notes, failure=messages.GRADER_FAILURE)
    write_submission_reports(out_dir, config, report, None)
    return report


def _keep_tail(source: Path, target: Path, limit: int = 50_000) -> None:
    if source.exists():
        with open(source, "rb") as fh:
            fh.seek(max(0, source.stat().st_size - limit))
            write_atomic(target, fh.read())


