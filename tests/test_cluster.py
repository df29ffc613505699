"""Grading on a Dask cluster: a real `dask scheduler` and real `dask worker` processes on 127.0.0.1.

The notebooks are the corpus's and the template's q1-only ones, so that each costs seconds.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from distributed import Client
from distributed.comm.core import CommClosedError

from tests.conftest import CORPUS, ROOT, q1_only_notebooks
from tests.test_acceleration import grade, outcome

DASK = Path(sys.executable).parent / "dask"
Q1_ONLY_CORPUS = ["odd_nbformat3", "odd_duplicate_ids", "hostile_sys_exit"]


TICK = {"DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "1s"}


class DaskCluster:
    """A scheduler and its workers, each a real process group, torn down at the end."""

    def __init__(self, where: Path, workers: int = 2):
        self.where = where
        where.mkdir(parents=True, exist_ok=True)
        self.file = where / "scheduler.json"
        self.procs = []
        self.scheduler = self._start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(self.file)], "scheduler")
        deadline = time.monotonic() + 60
        while not self.file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.address = json.loads(self.file.read_text())["address"]
        self.workers = [self.add_worker() for _ in range(workers)]
        self.wait_for(workers)

    def _start(self, args, name, env=None, **kw):
        log = open(self.where / f"{name}-{len(self.procs)}.log", "w")
        env = dict(env or os.environ, **TICK)     # as the README starts them
        proc = subprocess.Popen([str(DASK), *args], stdout=log, stderr=log, start_new_session=True, env=env, **kw)
        self.procs.append(proc)
        return proc

    def add_worker(self, env=None, cwd=None):
        return self._start(["worker", self.address, "--nthreads", "1", "--nworkers", "1", "--memory-limit", "0",
                            "--no-dashboard", "--host", "127.0.0.1"], "worker", env=env, cwd=cwd)

    def wait_for(self, count: int) -> list[str]:
        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(count, timeout=180)
            return list(client.scheduler_info()["workers"])

    def busy_worker(self) -> psutil.Process | None:
        """The process of a worker grading a submission right now (not running its canary)."""
        with Client(self.address, timeout="30s") as client:
            grading = [w for w, keys in client.processing().items() if any(k.startswith("grade-") for k in keys)]
            try:
                pid = client.run(os.getpid, workers=grading[:1]).get(grading[0]) if grading else None
            except (OSError, CommClosedError):     # a worker just killed, that the scheduler still lists
                return None
        return psutil.Process(pid) if pid else None

    def close(self):
        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = DaskCluster(tmp_path_factory.mktemp("dask"))
    yield c
    c.close()


def wait_until(predicate, proc, limit=300):
    """What ``predicate`` finds while ``proc`` grades; the test fails with its output if it ends first."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"grading ended first (exit {proc.returncode}): {proc.stderr.read()[-3000:]}")
        time.sleep(0.3)
    pytest.fail(f"nothing found in {limit} s")


def test_cluster_grades_like_local_grading_even_when_a_worker_is_killed(cluster, graded, tmp_path):
    out = tmp_path / "out"
    proc = grade([CORPUS / f"{name}.ipynb" for name in Q1_ONLY_CORPUS], out, "--scheduler", cluster.address)
    wait_until(cluster.busy_worker, proc).kill()
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    for name in Q1_ONLY_CORPUS:
        assert outcome(json.loads((out / name / "results.json").read_text())) == outcome(graded.results(name)), name
        assert (out / name / "worker.txt").read_text().startswith("tcp://127.0.0.1:")
    assert (out / "grades.csv").exists() and (out / "index.html").exists()
    cluster.wait_for(2)      # the nanny restarted the killed worker


def test_a_submission_that_takes_down_two_workers_is_a_grader_error(cluster, tmp_path):
    out = tmp_path / "out"
    # Slow enough to be caught on each worker in turn (its kernels start in half a second).
    paths = q1_only_notebooks(tmp_path / "in", 1, pause=60)
    proc = grade(paths, out, "--scheduler", cluster.address)
    first = wait_until(cluster.busy_worker, proc)
    first.kill()
    # Retried on the other worker: kill that one too.
    wait_until(lambda: (w := cluster.busy_worker()) is not None and w.pid != first.pid and w, proc).kill()
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    results = json.loads((out / paths[0].stem / "results.json").read_text())
    assert results["status"] == "grader_error" and results["score"] == 0
    assert "erreur interne du correcteur" in results["output"]
    assert "two Dask workers" in (out / paths[0].stem / "grader_error.txt").read_text()
    cluster.wait_for(2)


def stale_copy(where: Path) -> Path:
    """This project with another grading.toml: q1.1 is worth 7 points there."""
    for name in ("autograder", "assignments", "student_template"):
        shutil.copytree(ROOT / name, where / name, ignore=shutil.ignore_patterns("__pycache__"))
    toml = (ROOT / "grading.toml").read_text()
    (where / "grading.toml").write_text(toml.replace("points = 1", "points = 7", 1))
    assert (where / "grading.toml").read_text() != toml
    return where


def test_a_worker_running_another_grading_toml_is_refused(cluster, tmp_path):
    copy = stale_copy(tmp_path / "stale")
    env = dict(os.environ, PYTHONPATH=str(copy), AUTOGRADER_CACHE=str(ROOT / ".cache"))
    before = set(cluster.wait_for(2))
    stale = cluster.add_worker(env=env, cwd=copy)
    try:
        stale_address = (set(cluster.wait_for(3)) - before).pop()
        out = tmp_path / "out"
        paths = q1_only_notebooks(tmp_path / "in", 2)
        proc = grade(paths, out, "--scheduler", cluster.address)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        assert f"refusing Dask worker {stale_address}" in " ".join(err.split()) and "grading.toml" in err
        for path in paths:
            assert (out / path.stem / "worker.txt").read_text().strip() in before
            results = json.loads((out / path.stem / "results.json").read_text())
            assert results["status"] == "ok" and results["score"] == 5, results["score"]
    finally:
        os.killpg(stale.pid, signal.SIGKILL)


def test_scheduler_lost_mid_batch_exits_non_zero_and_resume_finishes(tmp_path):
    first = DaskCluster(tmp_path / "first", workers=1)
    out = tmp_path / "out"
    paths = q1_only_notebooks(tmp_path / "in", 3)
    try:
        proc = grade(paths, out, "--scheduler", first.address)
        wait_until(lambda: list(out.glob("*/results.json")), proc, limit=600)
        os.killpg(first.scheduler.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        first.close()
    assert proc.returncode != 0
    assert "lost the Dask scheduler" in " ".join(err.split()) and "--resume" in err
    kept = {p.parent.name for p in out.glob("*/results.json")}
    assert kept and not list(out.rglob("*.tmp*"))
    second = DaskCluster(tmp_path / "second", workers=1)
    try:
        proc = grade(paths, out, "--scheduler", second.address, "--resume")
        _, err = proc.communicate(timeout=600)
    finally:
        second.close()
    assert proc.returncode == 0, err[-3000:]
    assert {p.parent.name for p in out.glob("*/results.json")} == {p.stem for p in paths}
    assert all(json.loads((out / p.stem / "results.json").read_text())["score"] == 5 for p in paths)


def test_unreachable_scheduler_is_a_clear_error_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    proc = grade(q1_only_notebooks(tmp_path / "in", 1), out, "--scheduler", "tcp://127.0.0.1:9")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in " ".join(err.split())
    assert not list(out.rglob("results.json"))
