"""The scoring process: the warm one gives the outcomes of a fresh one, and is replaced when it dies,
between submissions or in the middle of one."""

import errno
import json
import os
import threading
import time

import psutil

from autograder.core.config import load_config
from autograder.runner import scoring
from autograder.runner.scoring import score


def test_warm_scoring_gives_the_cold_outcomes_and_is_replaced_when_it_dies(tmp_path):
    config = load_config()
    capture = tmp_path / "capture"        # nothing captured: every check fails, each with its reason
    capture.mkdir()
    failed = {"q2": "la question q2 n'a pas été complétée"}
    cold = score(config, capture, failed, tmp_path / "cold")
    scoring.warm_up()                     # as the grader does before running a kernel
    server = scoring._server()
    first = server.proc.pid
    warm = score(config, capture, failed, tmp_path / "warm", warm=True)
    assert server.proc.pid == first       # the process started ahead scored the submission
    server.proc.kill()
    server.proc.wait()
    again = score(config, capture, failed, tmp_path / "again", warm=True)
    assert server.proc.pid != first
    assert cold.outcomes == warm.outcomes == again.outcomes
    assert set(cold.outcomes) == {c.number for c in config.checks}
    assert not any(o.passed for o in cold.outcomes.values())
    assert {o.message for n, o in cold.outcomes.items() if n.startswith("q2.")} != {""}
    assert "failed" in (tmp_path / "warm" / "scoring.log").read_text()     # pytest's report, in the submission's log


def open_for_writing_once_read(pipe, grading: threading.Thread, timeout: float = 300):
    """The pipe, once the warm process has opened it to read; a failure, not a hang, when scoring
    ends (or never gets there) without opening it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.fdopen(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK), "w")
        except OSError as exc:
            if exc.errno != errno.ENXIO:        # ENXIO: no reader yet
                raise
        assert grading.is_alive() and time.monotonic() < deadline, "scoring never opened q1's call log"
        time.sleep(0.05)


def score_killing_midway(tmp_path, victim):
    """A q1 whose call log is a named pipe, scored warm: ``victim()`` (a process) is killed while
    the session is blocked reading it.  The outcomes a fresh process gives, and those scored."""
    config = load_config()
    calls = {"meta": {"question": "q1", "errors": []}, "calls": []}
    plain = tmp_path / "plain"
    (plain / "q1").mkdir(parents=True)
    (plain / "q1" / "calls.json").write_text(json.dumps(calls))
    expected = score(config, plain, {}, tmp_path / "cold")

    capture = tmp_path / "capture"
    (capture / "q1").mkdir(parents=True)
    pipe = capture / "q1" / "calls.json"
    os.mkfifo(pipe)
    got = {}
    grading = threading.Thread(target=lambda: got.update(scores=score(config, capture, {}, tmp_path / "warm",
                                                                      warm=True)))
    grading.start()
    with open_for_writing_once_read(pipe, grading) as writer:
        pipe.unlink()
        pipe.write_text(json.dumps(calls))
        dying = victim()
        dying.kill()
        dying.wait()
        writer.close()
    grading.join(timeout=300)
    assert not any(o.passed for n, o in expected.outcomes.items() if n.startswith("q1."))
    return expected, got["scores"]


def test_a_scoring_process_that_dies_in_the_middle_of_a_submission_is_replaced_by_a_cold_one(tmp_path):
    """The warm process is killed while its child scores: the child dies with it, and the submission
    is scored by a fresh process, with the outcomes a fresh process gives."""
    expected, got = score_killing_midway(tmp_path, lambda: scoring._server().proc)
    assert scoring._server().proc is None             # the dead process was let go; the next submission starts one
    assert got.outcomes == expected.outcomes


def test_a_scoring_child_that_dies_costs_its_submission_a_cold_scoring_and_the_server_nothing(tmp_path,
                                                                                              monkeypatch):
    """The child scoring one submission is killed (as the kernel's OOM killer would): that submission
    is scored by a fresh process; the warm process stays and scores the next one itself."""
    scoring.warm_up()
    server = scoring._server().proc
    expected, got = score_killing_midway(tmp_path, lambda: psutil.Process(server.pid).children()[0])
    assert got.outcomes == expected.outcomes
    assert scoring._server().proc is server and server.poll() is None
    (tmp_path / "next" / "q1").mkdir(parents=True)
    (tmp_path / "next" / "q1" / "calls.json").write_text((tmp_path / "plain" / "q1" / "calls.json").read_text())
    monkeypatch.setattr(scoring.subprocess, "run", None)      # no cold process this time
    again = score(load_config(), tmp_path / "next", {}, tmp_path / "again", warm=True)
    assert scoring._server().proc is server
    assert again.outcomes == expected.outcomes
    assert f"{len(load_config().checks)} failed" in (tmp_path / "again" / "scoring.log").read_text()   # its report
