"""Grade a class: every submission found, here or on a Dask cluster, then the class outputs.

The batch finds the submissions (intake.py), grades those not already graded (``--resume``) one by one
or on the workers of a Dask cluster (cluster.py), and writes the class outputs (classwide/) itself.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..classwide.class_report import ClassData, load_reports, write_class_report
from ..classwide.history import record
from ..classwide.overrides import load_overrides
from ..classwide.grades import write_grades
from ..classwide.roster import Student
from ..core.config import Config, LimitOverrides, load_config
from ..core.mnist_data import ensure_mnist
from ..core.results import GradeReport
from ..pipeline.grade import Job, grade_submission, grader_error
from ..pipeline.keep import STORE
from ..pipeline.report import read_report
from ..runner.canary import SandboxError, check_sandbox
from ..runner.forked import remove_orphan_slots
from .cluster import WORKER_FILE, Task, connect, grade_on_cluster, worker_address
from .intake import find_submissions
from .review import apply_overrides, recover, set_aside


@dataclass(frozen=True)
class GradedClass:
    reports: list[GradeReport]      # by submission
    outputs: ClassData              # what the class report shows: to examine, copies, roster


def _task(job: Job) -> Task:
    return Task(job.submission_id, job.path.name, None if job.intake_error else job.path.read_bytes(),
                job.intake_error, job.overrides, job.accelerate)


def worker_canary() -> str | None:
    """On a Dask worker: None when a kernel starts in this worker's sandbox, else why not (English)."""
    config = load_config()
    try:
        with tempfile.TemporaryDirectory(prefix="autograder-canary-inbox-") as inbox:
            check_sandbox(config, config.path, [Path(inbox)], Path(inbox) / "out")
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
        config_path = load_config().path
        grade_submission(Job(path, task.submission_id, out, config_path, ensure_mnist().resolve(), task.overrides,
                             intake_error=task.intake_error, accelerate=task.accelerate))
        files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        # The kept capture's objects, for the class's store beside the submission's folder.
        files.update({f"../{p.relative_to(out.parent).as_posix()}": p.read_bytes()
                      for p in (out.parent / STORE).rglob("*") if p.is_file()})
    return {**files, WORKER_FILE: worker_address().encode()}


def grade_batch(paths: list[Path], out: Path, *, config_path: Path | None = None, workers: int = 1,
                overrides: LimitOverrides = LimitOverrides(), resume: bool = False, progress=None,
                accelerate: bool = True, scheduler: str | None = None, roster: list[Student] | None = None,
                replace: bool = False, log=print) -> GradedClass:
    """Grade every submission found in ``paths`` into ``out``: here with one worker, on a local Dask
    cluster of ``workers`` processes, or on the Dask cluster at ``scheduler`` (cluster.py); then write the
    class outputs (grades.csv, summary.json, the class report, the LMS files for ``roster``), with the
    instructor's overrides applied.  ``replace``: grade those again in a folder that holds others, whose
    class outputs then cover the whole folder."""
    config_path = Path(config_path).resolve() if config_path else load_config().path
    config = load_config(config_path)
    recover(out)
    load_overrides(out, config)     # a broken overrides.csv stops here: nothing graded, nothing written
    if scheduler is None:   # on a cluster each worker runs its own canary (worker_canary)
        check_sandbox(config, config_path, paths, out)      # a sandbox that cannot start stops here: nothing written
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="autograder-intake-") as extracted:   # removed even when grading raises
        found, ignored = find_submissions(paths, Path(extracted))
        if replace:
            set_aside(out, [f.id for f in found])
        reports, graded = _grade_found(found, out=out, config=config, config_path=config_path, workers=workers,
                                       overrides=overrides, resume=resume, progress=progress,
                                       accelerate=accelerate, scheduler=scheduler, log=log)
        recover(out)            # the folders set aside, now graded again, are dropped
    reports = apply_overrides(out, config, load_reports(out, config) if replace else reports)
    write_grades(out, config, reports, [str(p) for p in ignored])
    record(out, config, "grade --replace" if replace else "grade", {s: [] for s in graded})
    return GradedClass(reports, write_class_report(out, config, roster))


def _grade_found(found, *, out: Path, config: Config, config_path: Path, workers: int,
                 overrides: LimitOverrides, resume: bool, progress, accelerate: bool, scheduler: str | None,
                 log) -> tuple[list[GradeReport], list[str]]:
    mnist = ensure_mnist().resolve()
    jobs = [Job(f.path, f.id, out / f.id, config_path, mnist, overrides, intake_error=f.error,
                accelerate=accelerate) for f in found]
    reports: list[GradeReport] = []
    todo = []
    for job in jobs:
        previous = read_report(job.out_dir, config) if resume else None
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
        with connect(scheduler, min(workers, len(todo)), config_path) as client:
            grade_on_cluster([(_task(job), job.out_dir) for job in todo], run=grade_task, client=client, config=config,
                             config_path=config_path, finish=finish, log=log,
                             canary=worker_canary if scheduler is not None else None,
                             failed=lambda task, out_dir, why: grader_error(config, task.submission_id, out_dir, why))
        remove_orphan_slots()       # those of local workers killed mid-submission
    return sorted(reports, key=lambda r: r.submission), [job.submission_id for job in todo]
