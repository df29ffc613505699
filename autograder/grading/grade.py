"""Grade: the pipeline for one submission, and a class-wide batch run in parallel.

load → map cells → instrument → execute → score (clean process) → report
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
from ..core.mnist_data import ensure_mnist
from ..core.results import GradeReport, Status
from ..notebook.load import load_submission
from ..notebook.memo import with_memo
from ..notebook.plan import preamble_source
from ..notebook.prepare import not_run_reasons, prepare
from ..runner.canary import SandboxError, check_sandbox
from ..runner.execute import execute
from ..runner.forked import ForkedLauncher, ForkServerError, KernelForkServer, fork_server, remove_orphan_slots
from ..runner.sandbox import SandboxLauncher, SandboxPolicy, submission_view
from ..runner.scoring import score, warm_up
from .cluster import WORKER_FILE, Task, connect, grade_on_cluster, worker_address
from .intake import find_submissions
from .memo import prefix_memo
from .report import build_results, executed_notebook, write_batch_reports, write_submission_reports

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
        report = build_results(config, job.submission_id, Status.INVALID_NOTEBOOK, None, notes=sub.notes if sub else [],
                               failure=messages.invalid_file(error))
        write_submission_reports(out, config, report, None)
        return report
    try:
        return _grade_notebook(config, job, sub)
    except Exception:  # our own bug: the batch goes on and the instructor sees why
        return _grader_error(config, job.submission_id, job.out_dir, traceback.format_exc(), notes=sub.notes)


def _grade_notebook(config: Config, job: Job, sub) -> GradeReport:
    template = nbformat.read(config.student, as_version=4)
    result_log: list[str] = []     # the grader's own troubles with this submission, for grader_log.txt
    view = submission_view(config, (job.path.parent, job.out_dir.parent), writable=(), mnist=job.mnist)
    policy = SandboxPolicy.detect(config.limits)
    server, server_start = _warm_up(policy, view, config, job, result_log.append)
    with tempfile.TemporaryDirectory(prefix="autograder-") as tmp, \
            _workspace(server, result_log.append) as (scratch, capture_root):
        capture = capture_root / CAPTURE
        prepared = prepare(sub.notebook, template,
                           preamble_source(job.mnist, capture, config.limits.seed, config.limits.threads,
                                           accelerate=job.accelerate))
        notes = list(sub.notes) + prepared.notes
        steps = prepared.steps
        memo = prefix_memo(config, template, job.mnist, log=result_log.append) if job.accelerate else None
        if memo is not None:
            steps = with_memo(steps, memo, capture_root)
        kernel_log = Path(tmp) / "kernel.log"
        view = replace(view, writable=(str(scratch), str(capture_root)))
        launcher = ForkedLauncher(config.limits, view, server) if server else SandboxLauncher(config.limits, view,
                                                                                               policy)
        result = execute(steps, scratch, config.limits, kernel_log=kernel_log, launcher=launcher)
        if server_start >= 0.1:
            result.seconds["fork server start"] = server_start
        if server is not None:
            _stop_kernels(server, result_log.append)
        _keep_tail(kernel_log, job.out_dir / "kernel.log")
        failures = {e.question: e.message for e in result.events if e.question in result.failed_questions}
        failed = not_run_reasons(prepared.cell_map, config.question_ids, ran=result.ran_questions, failed=failures,
                                 placeholder=config.placeholder)
        # Created only now that the kernel is gone, so nothing it wrote can pose as a result.
        with tempfile.TemporaryDirectory(prefix="autograder-scoring-") as scoring:
            scoring_started = time.monotonic()
            scores = score(config, capture, failed, Path(scoring), config_path=job.config_path,
                           public_only=job.public_only, warm=job.accelerate)
            result.seconds["scoring"] = time.monotonic() - scoring_started
            log = Path(scoring) / "scoring.log"
            if log.exists():
                shutil.copy(log, job.out_dir / "scoring.log")
    # The instructor's log: hidden steps that failed, and checks the grader itself could not run.
    log = result_log + result.hidden_errors + [f"check {n}: {o.internal}"
                                               for n, o in scores.outcomes.items() if o.internal]
    if log:
        write_atomic(job.out_dir / "grader_log.txt", "\n".join(log) + "\n")
    for q, measured in scores.measurements.items():
        if measured.get("test_inputs") == "not_genuine":
            notes.append(messages.test_inputs_not_genuine(q))
        unreadable = sorted({f["unreadable"] for f in measured.get("fits", []) if f.get("unreadable")})
        if unreadable:   # said, not guessed: the instructor may want to look at this training
            notes.append(messages.training_data_unexamined(q, unreadable))
    report = build_results(config, job.submission_id, result.status, scores.outcomes, events=result.events, notes=notes)
    report.measurements, report.duration_s = scores.measurements, round(result.duration, 1)
    report.kernel_restarts = result.restarts
    report.sandbox = dict(launcher.policy.isolation(), forked=server is not None)   # from the fork server
    executed = executed_notebook(sub.notebook, prepared.cell_map, outputs=result.outputs,
                                 counts=result.execution_counts, limit=config.limits.output_limit)
    write_submission_reports(job.out_dir, config, report, executed)
    _write_timings(job.out_dir, result.seconds)
    return report


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


def _stop_kernels(server: KernelForkServer, log) -> None:
    """Nothing the kernels started may still run while their captures are scored."""
    try:
        server.stop_kernels()
    except ForkServerError as exc:
        log(f"kernel fork server: {exc}; its namespace was killed")


def _write_timings(out_dir: Path, seconds: dict[str, float]) -> None:
    """Where this submission's grading time went, stage by stage (read by `make bench`)."""
    write_atomic(out_dir / "timings.json", json.dumps({k: round(v, 3) for k, v in seconds.items()}, indent=1))


def _grader_error(config: Config, submission_id: str, out_dir: Path, why: str, notes=()) -> GradeReport:
    """The report of a submission the grader itself failed on; ``why`` (English) for the instructor."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "grader_error.txt", why)
    report = build_results(config, submission_id, Status.GRADER_ERROR, None, notes=notes,
                           failure=messages.GRADER_FAILURE)
    write_submission_reports(out_dir, config, report, None)
    return report


def _keep_tail(source: Path, target: Path, limit: int = 50_000) -> None:
    if source.exists():
        with open(source, "rb") as fh:
            fh.seek(max(0, source.stat().st_size - limit))
            write_atomic(target, fh.read())


def _task(job: Job) -> Task:
    return Task(job.submission_id, job.path.name, None if job.intake_error else job.path.read_bytes(),
                job.intake_error, job.overrides, job.accelerate)


def worker_canary() -> str | None:
    """On a Dask worker: None when a kernel starts in this worker's sandbox, else why not (English)."""
    config = load_config()
    try:
        with tempfile.TemporaryDirectory(prefix="autograder-canary-inbox-") as inbox:
            check_sandbox(config, config.root / "grading.toml", [Path(inbox)], Path(inbox) / "out")
    except SandboxError as exc:
        return str(exc)
    return None


def grade_task(task: Task) -> dict[str, bytes]:
    """On a Dask worker: grade one submission from its bytes, in temporary directories, with this
    worker's own grader and MNIST copy; return the report files, by name."""
    with tempfile.TemporaryDirectory(prefix="autograder-task-") as tmp:
        inbox, out = Path(tmp) / "inbox", Path(tmp) / "out" / "submission"
        inbox.mkdir()
        path = inbox / task.filename
        if task.data is not None:
            path.write_bytes(task.data)
        config_path = load_config().root / "grading.toml"
        grade_submission(Job(path, task.submission_id, out, config_path, ensure_mnist().resolve(), task.overrides,
                             intake_error=task.intake_error, accelerate=task.accelerate))
        files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    return {**files, WORKER_FILE: worker_address().encode()}


def load_report(out_dir: Path, config: Config) -> GradeReport | None:
    """A submission graded by an earlier, interrupted run (``--resume``), or None."""
    path = out_dir / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return GradeReport.from_gradescope_dict(results, config)


def grade_batch(paths: list[Path], out: Path, *, config_path: Path | None = None, workers: int = 1,
                overrides: LimitOverrides = LimitOverrides(), resume: bool = False, progress=None,
                accelerate: bool = True, scheduler: str | None = None, log=print) -> list[GradeReport]:
    """Grade every submission found in ``paths`` into ``out``: here with one worker, on a local Dask
    cluster of ``workers`` processes, or on the Dask cluster at ``scheduler`` (cluster.py)."""
    config_path = Path(config_path) if config_path else load_config().root / "grading.toml"
    config = load_config(config_path)
    if scheduler is None:   # on a cluster each worker runs its own canary (worker_canary)
        check_sandbox(config, config_path, paths, out)      # a sandbox that cannot start stops here: nothing written
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="autograder-intake-") as extracted:   # removed even when grading raises
        found, ignored = find_submissions(paths, Path(extracted))
        return _grade_found(found, ignored, out=out, config=config, config_path=config_path, workers=workers,
                            overrides=overrides, resume=resume, progress=progress, accelerate=accelerate,
                            scheduler=scheduler, log=log)


def _grade_found(found, ignored, *, out: Path, config: Config, config_path: Path, workers: int,
                 overrides: LimitOverrides, resume: bool, progress, accelerate: bool, scheduler: str | None,
                 log) -> list[GradeReport]:
    mnist = ensure_mnist().resolve()
    jobs = [Job(f.path, f.id, out / f.id, config_path, mnist, overrides, intake_error=f.error,
                accelerate=accelerate) for f in found]
    reports: list[GradeReport] = []
    todo = []
    for job in jobs:
        previous = load_report(job.out_dir, config) if resume else None
        if previous is not None:
            reports.append(previous)
        else:
            todo.append(job)
    if progress:
        progress.start(len(jobs), done=len(reports))

    def finish(report: GradeReport) -> None:
        reports.append(report)
        if progress:
            progress.advance(report)

    if workers <= 1 and scheduler is None:
        for job in todo:
            finish(grade_submission(job))
    elif todo:
        # No cluster when nothing is left (a resumed run), and no more local workers than submissions left.
        with connect(scheduler, min(workers, len(todo))) as client:
            grade_on_cluster([(_task(job), job.out_dir) for job in todo], run=grade_task, client=client, config=config,
                             config_path=config_path, finish=finish, log=log,
                             canary=worker_canary if scheduler is not None else None,
                             failed=lambda task, out_dir, why: _grader_error(config, task.submission_id, out_dir, why))
        remove_orphan_slots()       # those of local workers killed mid-submission
    write_batch_reports(out, config, reports, [str(p) for p in ignored])
    return sorted(reports, key=lambda r: r.submission)
