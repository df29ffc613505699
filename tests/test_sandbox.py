"""Fast tests of the sandbox's pure parts: the watchdog over a real process tree."""

import os
import subprocess
import time
from dataclasses import replace

from autograder.core.config import Limits
from autograder.runner.sandbox import Watchdog


def test_watchdog_stops_and_joins_when_nothing_breaches():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        watchdog = Watchdog(proc.pid, Limits())
        watchdog.start()
        watchdog.stop()
        watchdog.join(5)
        assert not watchdog.is_alive() and watchdog.breach is None
        assert proc.poll() is None          # a quiet kernel is left alone
    finally:
        proc.kill()


def test_watchdog_kills_a_tree_over_the_process_limit():
    # Its own session, as the kernel has: the watchdog kills the whole process group.
    proc = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & sleep 30 & wait"], start_new_session=True)
    watchdog = Watchdog(proc.pid, replace(Limits(), max_processes=2))
    watchdog.start()
    watchdog.join(10)
    assert watchdog.breach is not None and watchdog.breach.kind == "processes"
    assert "trop de processus" in watchdog.breach.message
    deadline = time.monotonic() + 5
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.returncode is not None
    try:
        os.killpg(proc.pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
