"""Grade: the pipeline for one submission, and a class-wide batch run in parallel.

load → map cells → instrument → execute → score (clean process) → report
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path

import nbformat
from jupyter_core.paths import jupyter_runtime_dir

from ..core import messages
from ..core.config import Config, load_config
from ..core.files import write_atomic
from ..core.mnist_data import ensure_mnist
from ..core.results import GradeReport, Status
from ..notebook.load import load_submission
from ..notebook.plan import preamble_source
from ..notebook.prepare import not_run_reasons, prepare
from ..runner.execute import execute
from ..runner.sandbox import FileView, SandboxLauncher
from ..runner.scoring import score
from .intake import find_submissions
from .report import build_results, executed_notebook, write_batch_reports, write_submission_reports

CAPTURE = "capture"


@dataclass(frozen=True)
class Job:
    path: Path
    submission_id: str
    out_dir: Path
    config_path: Path
    mnist: Path
    cell_timeout: float | None = None
    seed: int | None = None
    intake_error: str | None = None     # French: why intake could not even find a notebook
    public_only: bool = False           # the student self-check: visible checks only
    accelerate: bool = True             # False: fits and scoring exactly as without acceleration


def grade_submission(job: Job) -> GradeReport:
    config = load_config(job.config_path)
    if job.cell_timeout:
        config = replace(config, limits=replace(config.limits, cell_timeout=job.cell_timeout))
    if job.seed is not None:
        config = replace(config, limits=replace(config.limits, seed=job.seed))
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
        return _grader_error(config, job, traceback.format_exc(), notes=sub.notes)


def _grade_notebook(config: Config, job: Job, sub) -> GradeReport:
    template = nbformat.read(config.student, as_version=4)
    # The kernel's working directory holds nothing but what it writes itself; the captured
    # artifacts live in another directory, out of reach of `rm -rf ..`.
    with tempfile.TemporaryDirectory(prefix="autograder-") as tmp, \
            tempfile.TemporaryDirectory(prefix="autograder-capture-") as capture_root:
        scratch = Path(tmp) / "work"
        capture = Path(capture_root) / CAPTURE
        scratch.mkdir()
        prepared = prepare(sub.notebook, template,
                           preamble_source(job.mnist, capture, config.limits.seed, config.limits.threads,
                                           accelerate=job.accelerate))
        notes = list(sub.notes) + prepared.notes
        kernel_log = Path(tmp) / "kernel.log"
        view = FileView(
            hide=(str(config.root), tempfile.gettempdir(), str(job.path.parent), str(job.out_dir.parent),
                  jupyter_runtime_dir()),
            read_only=(sys.prefix, str(job.mnist)),
            writable=(str(scratch), capture_root),
        )
        result = execute(prepared.steps, scratch, config.limits, kernel_log=kernel_log,
                         launcher=SandboxLauncher(config.limits, view))
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
    log = result.hidden_errors + [f"check {n}: {o.internal}" for n, o in scores.outcomes.items() if o.internal]
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
    executed = executed_notebook(sub.notebook, prepared.cell_map, outputs=result.outputs,
                                 counts=result.execution_counts, limit=config.limits.output_limit)
    write_submission_reports(job.out_dir, config, report, executed)
    _write_timings(job.out_dir, result.seconds)
    return report


def _write_timings(out_dir: Path, seconds: dict[str, float]) -> None:
    """Where this submission's grading time went, stage by stage (read by `make bench`)."""
    write_atomic(out_dir / "timings.json", json.dumps({k: round(v, 3) for k, v in seconds.items()}, indent=1))


def _pool_pass(jobs: list[Job], workers: int, finish, failed) -> list[Job]:
    """Grade ``jobs`` in one pool of worker processes; return those lost when a worker died.

    A dead worker breaks the whole `ProcessPoolExecutor`: every submission not yet finished
    is lost with it, whichever worker held it."""
    lost = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(grade_submission, job): job for job in jobs}
        for fut in as_completed(futures):
            try:
                report = fut.result()
            except BrokenProcessPool:
                lost.append(futures[fut])
                continue
            except Exception:  # noqa: BLE001 - our own bug in the worker: that submission only
                report = failed(futures[fut], traceback.format_exc())
            finish(report)
    return lost


def _grade_in_pools(jobs: list[Job], workers: int, finish, failed) -> None:
    """Grade in parallel, surviving workers that die: the submissions a broken pool lost are
    graded again in a new pool; one lost twice is graded alone, and is a grader error only if
    it takes that worker down too, so one submission never costs the others their grade."""
    lost_before: set[str] = set()
    while jobs:
        lost = _pool_pass(jobs, workers, finish, failed)
        alone = [job for job in lost if job.submission_id in lost_before]
        lost_before |= {job.submission_id for job in lost}
        jobs = [job for job in lost if job not in alone]
        for job in alone:
            if _pool_pass([job], 1, finish, failed):
                finish(failed(job, "the grading worker process died grading this submission, alone, again\n"))


def _grader_error(config: Config, job: Job, why: str, notes=()) -> GradeReport:
    """The report of a submission the grader itself failed on; ``why`` (English) for the instructor."""
    job.out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(job.out_dir / "grader_error.txt", why)
    report = build_results(config, job.submission_id, Status.GRADER_ERROR, None, notes=notes,
                           failure=messages.GRADER_FAILURE)
    write_submission_reports(job.out_dir, config, report, None)
    return report


def _keep_tail(source: Path, target: Path, limit: int = 50_000) -> None:
    if source.exists():
        with open(source, "rb") as fh:
            fh.seek(max(0, source.stat().st_size - limit))
            write_atomic(target, fh.read())


def load_report(out_dir: Path, config: Config) -> GradeReport | None:
    """A submission graded by an earlier, interrupted run (``--resume``), or None."""
    path = out_dir / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return GradeReport.from_gradescope_dict(results, config)


def grade_batch(paths: list[Path], out: Path, *, config_path: Path | None = None, workers: int = 1,
                cell_timeout: float | None = None, resume: bool = False, progress=None,
                accelerate: bool = True) -> list[GradeReport]:
    config_path = Path(config_path) if config_path else load_config().root / "grading.toml"
    config = load_config(config_path)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="autograder-intake-") as extracted:   # removed even when grading raises
        found, ignored = find_submissions(paths, Path(extracted))
        return _grade_found(found, ignored, out=out, config=config, config_path=config_path, workers=workers,
                            cell_timeout=cell_timeout, resume=resume, progress=progress, accelerate=accelerate)


def _grade_found(found, ignored, *, out: Path, config: Config, config_path: Path, workers: int,
                 cell_timeout: float | None, resume: bool, progress, accelerate: bool) -> list[GradeReport]:
    mnist = ensure_mnist()
    jobs = [Job(f.path, f.id, out / f.id, config_path, mnist, cell_timeout, intake_error=f.error,
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

    if workers <= 1:
        for job in todo:
            finish(grade_submission(job))
    else:
        _grade_in_pools(todo, workers, finish, lambda job, why: _grader_error(config, job, why))
    write_batch_reports(out, config, reports, [str(p) for p in ignored])
    return sorted(reports, key=lambda r: r.submission)
