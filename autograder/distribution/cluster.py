"""Cluster: grade a batch as tasks on Dask — a local cluster of worker processes, or a remote scheduler.

No shared filesystem: the client sends each submission's bytes with its id; a worker grades it in
its own temporary directories, under its own sandbox, and sends the report files back as bytes;
the client writes them atomically into the output folder, results.json last.  Before grading the
client checks that every worker runs this grader (version, grading.toml, student template, rubric)
and grades only on those that do.  A worker that dies while grading has its submission retried
once on another worker; a submission that kills a second worker is a grader error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dask
from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker, wait
from distributed.comm.core import CommClosedError
from distributed.scheduler import KilledWorker

from .. import __version__
from ..core.config import CONFIG_ENV, Config, LimitOverrides, load_config
from ..core.files import file_digest, tree_digest, write_atomic
from ..core.mnist_data import ensure_mnist
from ..core.results import GradeReport

RUBRIC = Path(__file__).resolve().parents[1] / "rubric"
WORKER_FILE = ".worker"    # among a task's returned files: the worker that graded it
CONNECT_TIMEOUT = "20s"
CANARY_TIMEOUT = 300       # seconds for every worker to start its sandboxed test kernel


class ClusterError(RuntimeError):
    """The cluster cannot grade (unreachable, lost, no matching worker): English, for the instructor."""


@dataclass(frozen=True)
class Task:
    """What a worker needs to grade one submission; the notebook travels as bytes."""
    submission_id: str
    filename: str
    data: bytes | None              # None when intake already found the file unusable
    intake_error: str | None
    overrides: LimitOverrides
    accelerate: bool


# No dashboard, so no use for the worker's statistical profiler (a thread sampling every stack), nor for
# the default fast tick in each of the scheduler, nannies and workers that only measures how late the event
# loop runs: both cost an idle cluster CPU all the time (docs/performance.md, Dask).
LOCAL_CLUSTER_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s"}


def grader_identity(config_path: str | None = None) -> dict[str, str]:
    """What makes two graders give the same grade: this package's version and the hashes of
    grading.toml, the student template and the rubric (its checks and hidden suite)."""
    config = load_config(Path(config_path) if config_path else None)
    return {
        "version": __version__,
        "grading.toml": file_digest(config.path),
        "student template": file_digest(config.student),
        "rubric": tree_digest(RUBRIC),
    }


class ProvisionMnist(WorkerPlugin):
    """Each worker gets its verified MNIST copy once, when it joins (the grader's own provisioning)."""

    name = "autograder-mnist"

    def setup(self, worker):
        ensure_mnist()


def worker_address() -> str:
    return get_worker().address


def write_returned(files: dict[str, bytes], out_dir: Path) -> None:
    """The report files a worker returned, each written atomically; results.json last (it marks done)."""
    files = dict(files)
    worker = files.pop(WORKER_FILE, b"").decode()
    results = files.pop("results.json")
    for name, data in files.items():
        write_atomic(out_dir / name, data)
    if worker:
        write_atomic(out_dir / "worker.txt", worker + "\n")
    write_atomic(out_dir / "results.json", results)


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """``name`` set to ``value`` for the processes started meanwhile."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int, config_path: Path) -> Iterator[Client]:
    """A client of ``scheduler``, or of a new local cluster of ``workers`` single-threaded processes."""
    if scheduler is None:
        # Kernels and scoring processes are children of the worker: Dask's memory limit would not
        # see them, the sandbox's watchdog does.  The workers read the grading.toml this grader reads.
        with dask.config.set(LOCAL_CLUSTER_CONFIG), _environ(CONFIG_ENV, str(config_path)), \
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0,
                             dashboard_address=None, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        with dask.config.set({"distributed.comm.timeouts.connect": CONNECT_TIMEOUT}):
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):   # a scheduler already gone has nothing left to close
            client.close(timeout=5)


def _retry_once(dask_scheduler) -> None:
    """A task whose worker dies is rescheduled once; if it kills a second worker it errs (KilledWorker)."""
    dask_scheduler.allowed_failures = 1


def matching_workers(client: Client, config_path: Path, log, canary=None) -> list[str]:
    """The workers that run this very grader (and, with ``canary``, whose sandbox starts a kernel);
    each other one is named in ``log`` and never used."""
    mine = grader_identity(str(config_path))
    good = []
    for address, identity in sorted(client.run(grader_identity).items()):
        differs = [key for key in mine if identity.get(key) != mine[key]]
        if differs:
            log(f"refusing Dask worker {address}: its {', '.join(differs)} differ from this grader's "
                f"(install the same autograder version and assignment there)")
        else:
            good.append(address)
    if good and canary is not None:
        # A task, not client.run: the canary drives a kernel with its own event loop, which must not
        # run on the worker's.
        probes = {address: client.submit(canary, key=f"canary-{address}", workers=[address],
                                         allow_other_workers=False, pure=False) for address in good}
        wait(list(probes.values()), timeout=CANARY_TIMEOUT)     # a worker that died meanwhile never answers
        for address, probe in probes.items():
            failure = _canary_failure(probe)
            if failure is not None:
                log(f"refusing Dask worker {address}: its sandbox cannot start a kernel: {failure}")
                good.remove(address)
            probe.cancel()
    if not good:
        raise ClusterError("no Dask worker can run this grader: nothing was graded")
    return good


def _canary_failure(probe) -> str | None:
    if probe.status == "finished":
        return probe.result()
    if probe.status == "error":
        return f"{type(probe.exception()).__name__}: {probe.exception()}"
    return f"no answer within {CANARY_TIMEOUT} s"


def grade_on_cluster(tasks: list[tuple[Task, Path]], *, run: Callable[[Task], dict[str, bytes]], client: Client,
                     config: Config, config_path: Path, finish, failed, log, canary=None) -> None:
    """Grade ``tasks`` (each with its output folder) with ``run`` on the client's workers: ``finish(report)``
    as each ends, ``failed(task, out_dir, why)`` for one the grader could not grade there.  ClusterError
    when the scheduler is lost or no worker runs this grader."""
    good = matching_workers(client, config_path, log, canary)
    client.register_plugin(ProvisionMnist())
    client.run_on_scheduler(_retry_once)
    futures = {}
    for task, out_dir in tasks:
        # The bytes travel inside the task, not scattered: data held by one worker dies with it,
        # and the retry on another worker would have nothing to grade.
        futures[client.submit(run, task, key=f"grade-{task.submission_id}-{_digest(task)}", workers=good,
                              allow_other_workers=False, pure=False)] = (task, out_dir)
    try:
        for future in as_completed(futures):
            task, out_dir = futures[future]
            finish(_collect(future, task, out_dir, config, failed))
    except (asyncio.CancelledError, concurrent.futures.CancelledError, CommClosedError, OSError, TimeoutError) as exc:
        raise ClusterError(f"lost the Dask scheduler while grading ({type(exc).__name__}); the submissions "
                           "graded so far are kept: run again with --resume to grade the rest") from exc


def _collect(future, task: Task, out_dir: Path, config: Config, failed) -> GradeReport:
    """A finished task's report, its files written into ``out_dir``."""
    if future.status == "error":
        error = future.exception()
        if isinstance(error, KilledWorker):
            return failed(task, out_dir, "the submission took down two Dask workers: it was tried on each\n")
        if not isinstance(error, (asyncio.CancelledError, concurrent.futures.CancelledError, CommClosedError)):
            return failed(task, out_dir, "".join(traceback.format_exception(error)))
    write_returned(future.result(), out_dir)
    return GradeReport.from_gradescope_dict(json.loads((out_dir / "results.json").read_text()), config)


def _digest(task: Task) -> str:
    return hashlib.sha256(task.data or b"").hexdigest()[:12]
