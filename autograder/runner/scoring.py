"""Score: run the hidden pytest suite in a separate, clean process over captured artifacts.

That process never runs student code: it reads the captured files and loads the models with
Keras' safe mode.  Importing TensorFlow, Keras and the rubric costs it about ten seconds, so a
grading process keeps one warm `ScoringServer` and sends it one submission after another; each
is a fresh pytest session in that process.  ``warm=False`` starts a new process per submission
(as `--no-accelerate` does); both give the same outcomes (tests/test_acceleration.py).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..core import messages
from ..core.config import Config
from ..core.environment import scoring_env
from ..core.files import write_atomic
from ..rubric.checks import failure_message

SUITE = Path(__file__).resolve().parents[1] / "rubric" / "hidden_tests"


@dataclass(frozen=True)
class CheckOutcome:
    number: str
    passed: bool
    message: str         # French, for the student
    internal: str = ""   # English detail when the grader itself failed


class ResultsPlugin:
    """Collects each check's outcome; used inside the scoring process."""

    def __init__(self, path: Path):
        self.path = path
        self.outcomes: dict[str, dict] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.when == "call" or (report.when == "setup" and report.failed):
            number = item.callspec.id if hasattr(item, "callspec") else item.name
            entry = {"passed": report.passed, "message": "", "internal": ""}
            if call.excinfo is not None:
                exc = call.excinfo.value
                entry["message"] = failure_message(exc)
                if not isinstance(exc, AssertionError):
                    entry["internal"] = f"{type(exc).__name__}: {exc}"
            self.outcomes[number] = entry

    def pytest_sessionfinish(self, session):
        write_atomic(self.path, json.dumps(self.outcomes, ensure_ascii=False, indent=1))


@dataclass
class Scores:
    outcomes: dict[str, CheckOutcome]
    measurements: dict          # per question: accuracy measured by the grader, inputs, fits


def score(config: Config, capture_dir: Path, failed: dict[str, str], workdir: Path, *,
          config_path: Path | None = None, public_only: bool = False, warm: bool = False) -> Scores:
    workdir.mkdir(parents=True, exist_ok=True)
    execution = workdir / "execution.json"
    execution.write_text(json.dumps({"failed": failed}, ensure_ascii=False))
    results = workdir / "checks.json"
    measurements = workdir / "measurements.json"
    argv = [str(results), str(SUITE), "--capture-dir", str(capture_dir), "--execution", str(execution),
            "--measurements", str(measurements),
            "--grading-config", str(config_path or config.root / "grading.toml")] + \
        (["--public-only"] if public_only else [])
    returncode = _server().run(argv, workdir) if warm else None
    if returncode is None:     # cold, or the warm process died: a fresh process, as without acceleration
        results.unlink(missing_ok=True)
        proc = subprocess.run([sys.executable, "-m", "autograder.runner.scoring", *argv], capture_output=True,
                              text=True, cwd=str(workdir), env=scoring_env())
        (workdir / "scoring.log").write_text(proc.stdout[-20000:] + proc.stderr[-20000:])
        returncode = proc.returncode
    raw = json.loads(results.read_text(encoding="utf-8")) if results.exists() else {}
    out = {}
    for check in config.checks:
        entry = raw.get(check.number)
        if entry is None:
            out[check.number] = CheckOutcome(check.number, False, messages.CHECK_NOT_RUN,
                                             f"scoring exited {returncode}; see scoring.log")
        else:
            out[check.number] = CheckOutcome(check.number, bool(entry["passed"]), entry["message"],
                                             entry.get("internal", ""))
    measured = json.loads(measurements.read_text()) if measurements.exists() else {}
    return Scores(out, measured)


class ScoringServer:
    """A warm scoring process: one JSON request per line on its stdin, one return code per line back.

    It is started by, and private to, one grading process; student code never runs in it.  It is
    replaced after ``RECYCLE`` submissions so that memory Keras keeps cannot grow without bound.
    """

    RECYCLE = 25

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.served = 0

    def start(self) -> None:
        """A process ready for the next submission: started now (it imports while a kernel runs), unless
        the one there is alive and not due for replacement."""
        if self.proc is None or self.proc.poll() is not None or self.served >= self.RECYCLE:
            self.close()
            self.proc = subprocess.Popen([sys.executable, "-m", "autograder.runner.scoring", "--serve"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True, env=scoring_env(), cwd=tempfile.gettempdir())
            self.served = 0

    def run(self, argv: list[str], workdir: Path) -> int | None:
        """The pytest session's return code, or None when the process died (the caller retries cold)."""
        self.start()
        self.served += 1
        try:
            self.proc.stdin.write(json.dumps({"argv": argv, "cwd": str(workdir)}) + "\n")
            self.proc.stdin.flush()
            reply = self.proc.stdout.readline()
        except OSError:
            reply = ""
        if not reply.strip():
            self.close()
            return None
        return int(reply)

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


def _give_back_memory() -> None:
    """Between submissions the process waits beside the next kernel: glibc keeps freed memory unless asked."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def _warm_imports():
    """Import what every session needs, then freeze it: the 400,000 objects of TensorFlow, Keras and
    scikit-learn would otherwise be traversed by every full collection (0.2 s each, several per
    submission).  Freezing changes no value computed; the submissions' own objects stay collectable."""
    import keras
    import sklearn.neighbors  # noqa: F401 - the contamination search's, imported by the first session otherwise

    from ..rubric import artifacts, checks, contamination  # noqa: F401

    gc.collect()
    gc.freeze()
    return keras


def _serve() -> int:
    """The warm process's loop.  Its replies go to a private copy of stdout; what pytest and
    TensorFlow print goes to each submission's scoring.log or to stderr, never into the replies."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    keras = _warm_imports()

    for line in sys.stdin:
        request = json.loads(line)
        workdir = Path(request["cwd"])
        os.chdir(workdir)
        with open(workdir / "scoring.log", "w") as log, contextlib.redirect_stdout(log), \
                contextlib.redirect_stderr(log):
            try:
                code = _main(request["argv"])
            except BaseException as exc:  # noqa: BLE001 - reported as a failed session, the loop goes on
                print(f"scoring failed: {exc!r}", file=log)
                code = 3
        keras.backend.clear_session()      # its own full collection frees the submission's models
        _give_back_memory()
        replies.write(f"{code}\n")
        replies.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_serve() if sys.argv[1:] == ["--serve"] else _main(sys.argv[1:]))
