"""The kernel fork server (runner/forked.py, kernel/forkserver.py), run for real: kernels forked in the grader's
sandbox see nothing of the submission graded before theirs, cannot reach the server, and a server that dies or
does not answer is replaced without losing a kernel.  That forked kernels grade exactly like launched ones is
shown by tests/test_acceleration.py (the corpus graded with and without acceleration)."""

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from autograder.core.config import load_config
from autograder.core.mnist_data import ensure_mnist
from autograder.core.results import EventKind
from autograder.notebook.plan import Step
from autograder.runner.execute import execute
from autograder.runner.forked import ForkedLauncher, ForkServerError, close_servers, fork_server, remove_orphan_slots
from autograder.runner.confinement import submission_view
from autograder.runner.sandbox import SandboxPolicy
from tests.conftest import ROOT

CONFIG = load_config()
LIMITS = replace(CONFIG.limits, cell_timeout=30)
POLICY = SandboxPolicy.detect(LIMITS)
pytestmark = pytest.mark.skipif(not POLICY.pid_namespace or not POLICY.files_hidden,
                                reason="kernels are forked only in a sandbox with a PID namespace")


@pytest.fixture(scope="module")
def view():
    yield submission_view(CONFIG, (), writable=(), mnist=ensure_mnist().resolve())
    close_servers()


def run_cells(view, server, *sources, limits=LIMITS):
    """The cells in one forked kernel, as a submission's would run; each cell's printed text."""
    steps = [Step("cell", source, position=i) for i, source in enumerate(sources)]
    launcher = ForkedLauncher(limits, replace(view, writable=(str(server.work), str(server.capture))), server)
    result = execute(steps, server.work, limits, launcher=launcher)
    texts = ["".join(o.get("text", "") for o in result.outputs[i] if o.get("name") == "stdout")
             for i in range(len(sources))]
    return result, texts


def finish(server):
    """What the grader does after each submission: stop the kernels, score, empty the slot."""
    server.stop_kernels()
    server.clear()


DAEMON = """
import subprocess
open('/dev/shm/left', 'w').write('A')
open('notes.txt', 'w').write('A')
subprocess.Popen(['/bin/sh', '-c', 'while true; do echo x >> {capture}/beat; sleep 0.05; done'],
                 start_new_session=True)
print('started')
"""

def beat_stopped(server) -> bool:
    """Whether DAEMON's detached loop stopped writing."""
    beat = server.capture / "beat"
    size = beat.stat().st_size
    time.sleep(0.3)
    return beat.stat().st_size == size


LOOK = """
import os
others = []
for name in os.listdir('/proc'):
    if name.isdigit() and int(name) not in (1, os.getpid(), os.getppid()):
        try:
            state = open(f'/proc/{name}/stat').read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if state != 'Z':
            others.append(name)
print(sorted(set(os.listdir('.')) - {'.ipython'}), sorted(os.listdir('/dev/shm')), others)   # its own dotfiles
"""


def test_nothing_of_one_submission_reaches_the_next(view):
    server = fork_server(POLICY, view, LIMITS)
    assert server is not None
    result, texts = run_cells(view, server, DAEMON.format(capture=server.capture))
    assert texts == ["started\n"] and not result.events
    server.stop_kernels()
    assert beat_stopped(server)        # the detached loop died with its kernel's submission
    server.clear()
    assert fork_server(POLICY, view, LIMITS) is server    # the same server grades the next one
    result, texts = run_cells(view, server, LOOK)
    assert texts == ["[] [] []\n"]     # no file, no shared memory, no process left by the kernel before
    finish(server)


def test_a_kernel_cannot_read_or_trace_its_server(view):
    server = fork_server(POLICY, view, LIMITS)
    probe = """
import os
for what in ('mem', 'environ', 'maps'):
    try:
        open(f'/proc/{os.getppid()}/{what}', 'rb').read(1)
        print(what, 'read')
    except OSError as exc:
        print(what, type(exc).__name__)
"""
    _, texts = run_cells(view, server, probe)
    assert texts == ["mem PermissionError\nenviron PermissionError\nmaps PermissionError\n"]
    finish(server)


def test_a_server_killed_by_its_kernel_takes_its_namespace_with_it(view):
    server = fork_server(POLICY, view, LIMITS)
    # The kernel dies with its server's namespace, a moment later: it waits for that inside the killing cell,
    # or its death would fall, as the machine's load decides, in that cell or in the next.
    kill = (DAEMON.format(capture=server.capture)
            + "import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(3 * 60)")
    result, texts = run_cells(view, server, kill, "print('after', 6 * 7)")
    # It is launched again without the server, and the notebook goes on.
    assert texts[1] == "after 42\n"
    assert [e.kind for e in result.events] == [EventKind.KERNEL_DIED] and result.restarts == 1
    with pytest.raises(ForkServerError):
        server.stop_kernels()      # no server to reset: its whole namespace is killed instead
    assert beat_stopped(server)
    server.clear()
    replacement = fork_server(POLICY, view, LIMITS)
    assert replacement is not None and replacement is not server and replacement.alive()
    assert not server.slot.exists()          # the dead server's directories are gone
    _, texts = run_cells(view, replacement, LOOK)
    assert texts == ["[] [] []\n"]
    finish(replacement)


def test_a_stopped_server_is_killed_with_its_namespace(view):
    server = fork_server(POLICY, view, LIMITS)
    stop = DAEMON.format(capture=server.capture) + "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)"
    _, texts = run_cells(view, server, stop)
    assert texts == ["started\n"]
    server.reply_seconds = 2
    with pytest.raises(ForkServerError):
        server.stop_kernels()            # no answer: the server and everything beside it are killed
    assert not server.alive()
    assert beat_stopped(server)
    close_servers()


OWNS_A_SERVER = """
from autograder.core.config import load_config
from autograder.core.mnist_data import ensure_mnist
from autograder.runner.forked import fork_server
from autograder.runner.confinement import submission_view
from autograder.runner.sandbox import SandboxPolicy
config = load_config()
server = fork_server(SandboxPolicy.detect(config.limits), submission_view(config, (), writable=(),
                     mnist=ensure_mnist().resolve()), config.limits)
(server.work / 'answer.npz').write_bytes(b'a submission file')
print(server.slot, flush=True)
__import__('time').sleep(600)
"""


def test_the_slot_of_a_killed_grading_process_goes_with_the_next_server_and_a_live_one_stays(view):
    owner = subprocess.Popen([sys.executable, "-c", OWNS_A_SERVER], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        orphan = Path(owner.stdout.readline().strip())
        assert orphan.name and (orphan / "work" / "answer.npz").is_file()
        live = fork_server(POLICY, view, LIMITS)
        assert orphan.is_dir()          # its grading process is alive: its slot is kept
    finally:
        owner.kill()                    # as a Dask nanny kills a worker: no atexit, no close()
        owner.wait()
    assert orphan.is_dir()
    close_servers()
    replacement = fork_server(POLICY, view, LIMITS)
    assert not orphan.exists()          # swept when the next server started
    assert not live.slot.exists() and replacement.slot.is_dir()
    remove_orphan_slots()
    assert replacement.slot.is_dir()    # a live server's slot is never swept
    finish(replacement)


def test_a_cell_has_its_time_limit_of_computation_however_busy_the_machine(view):
    """A kernel given half a processor by another process finishes a cell that computes for less than the limit
    (it lasts longer than the limit on the wall); a cell that computes without end is interrupted, its kernel kept."""
    limits = replace(LIMITS, cell_timeout=4)
    cpu = min(os.sched_getaffinity(0))
    # A session of its own, as the kernel's: the scheduler shares a processor fairly between sessions.
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        os.sched_setaffinity(hog.pid, {cpu})
        server = fork_server(POLICY, view, limits)
        slowed = (f"import os, time\nos.sched_setaffinity(0, {{{cpu}}})\nstarted = time.monotonic()\n"
                  "t = time.process_time()\nwhile time.process_time() - t < 3: pass\n"
                  "print(time.monotonic() - started > 4)")
        result, texts = run_cells(view, server, slowed, "while True: pass", "print('after')", limits=limits)
    finally:
        hog.kill()
    assert texts[0] == "True\n" and texts[2] == "after\n"
    assert [e.kind for e in result.events] == [EventKind.TIMEOUT] and result.restarts == 0
    assert "(4 s)" in result.events[0].message
    finish(server)
