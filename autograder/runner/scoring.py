"""Score: run the hidden pytest suite in a separate, clean process over captured artifacts.

That process never runs student code: it reads the captured files and loads the models with
Keras' safe mode.  Importing TensorFlow, Keras and the rubric costs it about ten seconds, so a
grading process keeps one warm `ScoringServer`, which imports them once and forks one child per
submission; the child runs a fresh pytest session and exits.  Nothing one submission's scoring
leaves (models, Keras state, memory) reaches the next, and between submissions, while the next
kernel trains, only the imports stay resident.  ``warm=False`` starts a new process per submission
(as `--no-accelerate` does); both give the same outcomes (tests/test_acceleration.py).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from ..core import messages
from ..core.config import Config
from ..core.environment import scoring_env
from ..core.files import write_atomic
from ..core.results import CheckOutcome, QuestionMeasurement, Scores
from ..rubric import checks

PR_SET_PDEATHSIG = 1
SUITE = Path(__file__).resolve().parents[1] / "rubric" / "hidden_tests"
SERVE, SERVE_LAZY = "--serve", "--serve-lazy"     # the warm process, importing Keras now or when first needed


class ResultsPlugin:
    """Collects each check's outcome; used inside the scoring process."""

    def __init__(self, path: Path):
        self.path = path
        self.outcomes: dict[str, CheckOutcome] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.when == "call" or (report.when == "setup" and report.failed):
            number = item.callspec.id if hasattr(item, "callspec") else item.name
            exc = None if report.passed else call.excinfo.value if call.excinfo is not None else AssertionError()
            self.outcomes[number] = checks.outcome(number, exc)

    def pytest_sessionfinish(self, session):
        write_atomic(self.path, json.dumps({n: o.to_dict() for n, o in self.outcomes.items()}, ensure_ascii=False,
                                           indent=1))


STORED_ARTIFACTS = "artifacts.json"    # in score()'s workdir: what the scoring process computed, when asked


def score(config: Config, capture_dir: Path, failed: dict[str, str], workdir: Path, *,
          config_path: Path | None = None, public_only: bool = False, warm: bool = False,
          artifacts: Path | None = None, store_artifacts: bool = False) -> Scores:
    """The checks' outcomes and measurements, from the capture or from ``artifacts`` (rubric/stored.py) that
    an earlier scoring of the same capture stored; ``store_artifacts`` stores them in workdir/STORED_ARTIFACTS."""
    workdir.mkdir(parents=True, exist_ok=True)
    execution = workdir / "execution.json"
    execution.write_text(json.dumps({"failed": failed}, ensure_ascii=False))
    results = workdir / "checks.json"
    measurements = workdir / "measurements.json"
    argv = [str(results), str(SUITE), "--capture-dir", str(capture_dir), "--execution", str(execution),
            "--measurements", str(measurements),
            "--grading-config", str(config_path or config.path)] + \
        (["--public-only"] if public_only else []) + \
        (["--artifacts-in", str(artifacts)] if artifacts else []) + \
        (["--artifacts-out", str(workdir / STORED_ARTIFACTS)] if store_artifacts else [])
    returncode = _server().run(argv, workdir, models=artifacts is None) if warm else None
    if returncode is None:     # cold, or the warm process died: a fresh process, as without acceleration
        results.unlink(missing_ok=True)
        proc = subprocess.run([sys.executable, "-m", "autograder.runner.scoring", *argv], capture_output=True,
                              text=True, cwd=str(workdir), env=scoring_env())
        (workdir / "scoring.log").write_text(proc.stdout[-20000:] + proc.stderr[-20000:])
        returncode = proc.returncode
    raw = json.loads(results.read_text(encoding="utf-8")) if results.exists() else {}
    lost = CheckOutcome("", False, messages.CHECK_NOT_RUN, f"scoring exited {returncode}; see scoring.log")
    out = {c.number: CheckOutcome.from_dict(raw[c.number]) if c.number in raw else replace(lost, number=c.number)
           for c in config.checks}
    measured = json.loads(measurements.read_text()) if measurements.exists() else {}
    return Scores(out, {q: QuestionMeasurement.from_dict(m) for q, m in measured.items()})


class ScoringServer:
    """A warm scoring process: one JSON request per line on its stdin, one exit status per line back.

    It is started by, and private to, one grading process; student code never runs in it.  Each
    request is scored in a child it forks; a child that dies is reported as a negative status.
    """

    def __init__(self):
        self.proc: subprocess.Popen | None = None

    def start(self, models: bool = True) -> None:
        """A process ready for the next submission: started now (it imports while a kernel runs), unless
        the one there is alive.  ``models`` False: it imports Keras only for the first session that
        loads a model (a rescore from stored artifacts may load none)."""
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self.proc = subprocess.Popen([sys.executable, "-m", "autograder.runner.scoring",
                                          SERVE if models else SERVE_LAZY],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True, env=scoring_env(), cwd=tempfile.gettempdir())

    def run(self, argv: list[str], workdir: Path, models: bool = True) -> int | None:
        """The pytest session's return code, or None when the server or its child died (the caller
        retries cold).  A dead child leaves the server as it was: the next submission forks another."""
        self.start(models=False)
        try:
            self.proc.stdin.write(json.dumps({"argv": argv, "cwd": str(workdir), "models": models}) + "\n")
            self.proc.stdin.flush()
            reply = self.proc.stdout.readline()
        except OSError:
            reply = ""
        if not reply.strip():
            self.close()
            return None
        code = int(reply)
        return None if code < 0 else code

    def close(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            if self.proc.poll() is None:
                self.proc.kill()
        self.proc = None


_SERVERS: list[ScoringServer] = []


def warm_up() -> None:
    """Start this grading process's warm scoring process ahead of the submission it will score."""
    _server().start()


def _server() -> ScoringServer:
    if not _SERVERS:
        _SERVERS.append(ScoringServer())
        atexit.register(_SERVERS[0].close)
    return _SERVERS[0]


def _main(argv: list[str]) -> int:
    results, args = Path(argv[0]), argv[1:]
    # Not the unraisable-exception plugin: it runs the garbage collector five times per session.  No
    # configuration file either: from a checkout, the project's pytest options (addopts: xdist) would apply.
    return int(pytest.main(["-q", "-c", os.devnull, "--rootdir", str(SUITE), "-p", "no:cacheprovider",
                            "-p", "no:randomly", "-p", "no:unraisableexception", *args],
                           plugins=[ResultsPlugin(results)]))


def _warm_imports(models: bool = True) -> None:
    """Import what every session needs, and with ``models`` what loading a model and searching the training
    data need (building the contamination references), then freeze it: the 400,000 objects of TensorFlow,
    Keras and scikit-learn would otherwise be traversed by every full collection (several per submission),
    and in a forked child that traversal would also copy the pages they share.
    Importing runs no TensorFlow operation, so no runtime thread exists yet to be lost by a fork."""
    from ..core.mnist_data import MnistError, shared_mnist
    from ..rubric import artifacts, checks, measures, stored  # noqa: F401

    try:
        mnist = shared_mnist()
    except MnistError:
        mnist = None     # each session then reads the copy it is given, as a cold one does
    if models:
        import keras  # noqa: F401
        import sklearn.neighbors  # noqa: F401 - the contamination search's, imported by the first session otherwise

        from ..rubric import contamination

        if mnist is not None:    # what every submission's contamination search compares with, built once
            contamination.prepare(mnist)
    gc.collect()
    gc.freeze()


def _serve(models: bool) -> int:
    """The warm process's loop.  Its replies go to a private copy of stdout; what pytest and
    TensorFlow print goes to each submission's scoring.log, never into the replies."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    _warm_imports(models)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("models", True) and not models:
            _warm_imports(models=True)
            models = True
        sys.stdout.flush()
        server = os.getpid()
        pid = os.fork()
        if pid == 0:
            os._exit(_child(request, server, replies.fileno()))
        _, status = os.waitpid(pid, 0)
        replies.write(f"{os.waitstatus_to_exitcode(status)}\n")
        replies.flush()
    return 0


def _child(request: dict, server: int, replies: int) -> int:
    """One submission's session, in a child that dies with the server: a grading process that lost
    the server scores the submission again, cold, and nothing may write its results meanwhile."""
    code = 3
    try:
        if ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0 or os.getppid() != server:
            return 3
        os.close(replies)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        workdir = Path(request["cwd"])
        os.chdir(workdir)
        with open(workdir / "scoring.log", "w") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                code = _main(request["argv"])
            except BaseException as exc:  # noqa: BLE001 - reported as a failed session
                print(f"scoring failed: {exc!r}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - the child never returns into the server's loop
        pass
    return code


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1] == SERVE) if sys.argv[1:2] in ([SERVE], [SERVE_LAZY]) else _main(sys.argv[1:]))
