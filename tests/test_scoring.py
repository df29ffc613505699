"""The scoring process: the warm one gives the outcomes of a fresh one, and is replaced when it dies,
between submissions or in the middle of one."""

import errno
import json
import os
import threading
import time

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


def test_a_scoring_process_that_dies_in_the_middle_of_a_submission_is_replaced_by_a_cold_one(tmp_path):
    """The warm process is blocked reading q1's call log (a named pipe) when it is killed; the
    submission is then scored by a fresh process, with the outcomes a fresh process gives."""
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
        dying = scoring._server().proc
        dying.kill()
        dying.wait()
        writer.close()
    grading.join(timeout=300)
    assert scoring._server().proc is None             # the dead process was let go; the next submission starts one
    assert got["scores"].outcomes == expected.outcomes
    assert not any(o.passed for n, o in expected.outcomes.items() if n.startswith("q1."))
