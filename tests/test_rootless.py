"""The sandbox's guarantees with the grader as root, as an ordinary user and where user namespaces are disabled.

One containment notebook per mode, generated from the released template (no training, so it stays fast), is
graded by the real CLI: its q1 tries to read the rubric, the master, the hidden suite, its own submission,
other kernels' keys, the grader's home and output folder; to write and delete outside its work directory; to
see the grader's processes; and to open a network connection.  As an ordinary user its q2 is a fork bomb and
its q3 a memory bomb.  The test fails if the notebook reads or changes anything it should not.

The three runs go in parallel, each in a mount namespace of the test's own (the test is root): the paths the
grader needs are made passable for a fresh uid that owns no file, the grader's home is a fresh /home holding
planted secrets, and the grader runs its venv through a symlink in that home (a tree its kernels do not see),
as a new user with `.venv` a symlink would.  The ordinary user is `setpriv --reuid` to that uid; "user
namespaces disabled" is that user inside bubblewrap's `--disable-userns`, as on a hardened distribution.
"""

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from autograder.core.mnist_data import ensure_mnist
from autograder.runner.sandbox import Mechanism, SandboxPolicy, namespaces_available
from tests.conftest import CONFIG, MEMORY_MB, ROOT
from tests.corpus.build_corpus import HOSTILE

GRADER_UID = 1_500_000_000 + 2 * (os.getpid() % 100_000)   # fresh: no account, file or group; < 2**31 for bwrap
HOME = "/home/autograder-grader"                               # exists in the test's mount namespaces only
MODES = {"root": None, "user": GRADER_UID, "neither": GRADER_UID + 1}
SUBMISSION = "containment"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("bwrap")
    or not namespaces_available("--mount"),
    reason="needs root (to become a fresh ordinary uid in a mount namespace of its own), setpriv and bubblewrap")

SNOOP = """\
import glob, json, os, socket, ipykernel
own = os.path.dirname(ipykernel.get_connection_file())
kernels = [p for p in glob.glob("/tmp/autograder-kernelspec-*/connection-*.json") if os.path.dirname(p) != own]
read, listed, written, deleted = [], {{}}, [], []
for path in {reads!r} + kernels:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
        read.append(path)
    except OSError:
        pass
for folder in {folders!r}:
    try:
        listed[folder] = os.listdir(folder)
    except OSError:
        pass
for path in {writes!r}:
    try:
        with open(path, "w") as fh:
            fh.write("evade")
        written.append(path)
    except OSError:
        pass
for path in {deletes!r}:
    try:
        os.remove(path)
        deleted.append(path)
    except OSError:
        pass
grader = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        grader += b"autograder\\0grade" in open(f"/proc/{{pid}}/cmdline", "rb").read()
    except OSError:
        pass
s = socket.socket()
s.settimeout(5)
print("SNOOP " + json.dumps({{"read": read, "listed": listed, "written": written, "deleted": deleted,
                              "grader_processes": grader, "connect": s.connect_ex(("151.101.0.223", 443)),
                              "uid": os.getuid()}}))
"""


class Run:
    """One mode's batch: where its files are, what the CLI said, what the kernel printed."""

    def __init__(self, mode: str, base: Path):
        self.mode, self.base = mode, base
        self.inbox, self.out = base / "inbox", base / "out"
        self.planted_kernel = Path(tempfile.mkdtemp(prefix=f"autograder-kernelspec-planted-{mode}-"))
        self.escapes = [ROOT / f"autograder-escape-{mode}", self.inbox / "escape", self.out / "escape",
                        Path(f"/tmp/autograder-escape-{mode}-{os.getpid()}"),
                        Path(f"/var/tmp/autograder-escape-{mode}-{os.getpid()}"),
                        Path(f"/dev/shm/autograder-escape-{mode}-{os.getpid()}"), self.planted_kernel / "escape"]
        self.planted = [self.inbox / f"{SUBMISSION}.ipynb", self.out / "planted" / "results.json",
                        self.planted_kernel / "connection-1.json"]
        self.log = ""
        self.returncode = None

    def results(self) -> dict:
        return json.loads((self.out / SUBMISSION / "results.json").read_text())

    def snoop(self) -> dict:
        nb = nbformat.read(self.out / SUBMISSION / "executed.ipynb", as_version=4)
        q1 = next(c for c in nb.cells if c.metadata.get("autograder", {}).get("question") == "q1")
        line = next(line for o in q1.outputs for line in o.get("text", "").splitlines() if line.startswith("SNOOP "))
        return json.loads(line[len("SNOOP "):])

    def cleanup(self) -> None:
        for path in self.escapes:
            if path.is_file():
                path.unlink()
        shutil.rmtree(self.planted_kernel, ignore_errors=True)
        shutil.rmtree(self.base, ignore_errors=True)


def containment_notebook(run: Run, questions: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.read(CONFIG.student, as_version=4)
    for cell in nb.cells:
        question = cell.metadata.get("autograder", {}).get("question")
        if question in questions:
            cell.source = questions[question]
    return nb


def snoop_source(run: Run) -> str:
    reads = [str(ROOT / "grading.toml"), str(CONFIG.master),
             str(ROOT / "autograder" / "rubric" / "hidden_tests" / "test_rubric.py"),
             f"{HOME}/.ssh/id_ed25519", f"{HOME}/.local/share/jupyter/runtime/kernel-planted.json",
             "/etc/shadow"] + [str(p) for p in run.planted]
    return SNOOP.format(reads=reads, folders=[str(run.inbox), str(run.out), HOME],
                        writes=[str(p) for p in run.escapes] + [f"{HOME}/escape"], deletes=[str(p) for p in run.planted])


def passable(paths) -> dict[str, list[str]]:
    """For each path, the outermost ancestor a user that owns nothing cannot pass (a 0700 /root holding pyenv)."""
    blocked: dict[str, list[str]] = {}
    for path in paths:
        parts = Path(path).parts
        for i in range(2, len(parts)):
            ancestor = str(Path(*parts[:i]))
            if not os.stat(ancestor).st_mode & stat.S_IXOTH:
                blocked.setdefault(ancestor, []).append(str(path))
                break
    return blocked


def harness(mode: str, command: list[str]) -> list[str]:
    """Root, in a mount namespace of its own: needed paths passable, a fresh home, then the grader as ``mode``."""
    q = shlex.quote
    uid = MODES[mode]
    needed = [os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), str(ROOT), str(ensure_mnist().parent)]
    blocked = passable(needed)
    kept = [p for paths in blocked.values() for p in paths]
    lines = ["set -e", "mount --make-rprivate /", "mount -t tmpfs -o size=64k,mode=700 tmpfs /mnt"]
    lines += [f"mkdir /mnt/{i} && mount --bind {q(p)} /mnt/{i}" for i, p in enumerate(kept)]
    lines += [f"mount -t tmpfs -o size=1m,mode=755 tmpfs {q(a)}" for a in blocked]
    lines += [f"mkdir -p {q(p)} && mount --bind /mnt/{i} {q(p)}" for i, p in enumerate(kept)]
    lines += ["mount -t tmpfs -o size=4m,mode=755 tmpfs /home",
              f"mkdir -p {HOME}/.ssh {HOME}/.local/share/jupyter/runtime",
              f"printf SECRET-SSH-KEY > {HOME}/.ssh/id_ed25519",
              f"printf '{{\"key\": \"SECRET\"}}' > {HOME}/.local/share/jupyter/runtime/kernel-planted.json",
              f"ln -s {q(os.path.realpath(sys.prefix))} {HOME}/venv",
              f"chown -R {uid if uid is not None else 0}:{uid if uid is not None else 0} {HOME}",
              f"chmod -R go-rwx {HOME}/.ssh {HOME}/.local"]
    as_user = [] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    hardened = ["bwrap", "--unshare-user", "--disable-userns", "--bind", "/", "/", "--dev-bind", "/dev", "/dev",
                "--"] if mode == "neither" else []
    script = "\n".join(lines) + '\nexec "$@"'
    return (["unshare", "--mount", "--", "/bin/sh", "-c", script, "harness"] + as_user + hardened
            + ["env", f"HOME={HOME}", f"{HOME}/venv/bin/python"] + command)


def prepare(mode: str) -> Run:
    run = Run(mode, Path(tempfile.mkdtemp(prefix=f"autograder-rootless-{mode}-")))
    run.inbox.mkdir()
    (run.out / "planted").mkdir(parents=True)
    (run.out / "planted" / "results.json").write_text('{"score": 20}')
    (run.planted_kernel / "connection-1.json").write_text('{"key": "SECRET-OTHER-KERNEL"}')
    questions = {"root": {"q1": snoop_source(run)},
                 "user": {"q1": snoop_source(run), "q2": HOSTILE["fork_bomb"][0], "q3": HOSTILE["memory_bomb"][0]},
                 "neither": {"q1": HOSTILE["fork_bomb"][0]}}[mode]
    nbformat.write(containment_notebook(run, questions), run.inbox / f"{SUBMISSION}.ipynb")
    uid = MODES[mode]
    for path in [run.base, run.planted_kernel, *run.base.rglob("*"), *run.planted_kernel.rglob("*")]:
        os.chown(path, uid if uid is not None else 0, uid if uid is not None else 0)
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
    return run


@pytest.fixture(scope="module")
def runs():
    """The three batches, in parallel; each mode's files removed afterwards."""
    prepared = {mode: prepare(mode) for mode in MODES}
    procs = {}
    for mode, run in prepared.items():
        command = ["-m", "autograder", "grade", str(run.inbox), "--out", str(run.out), "--cell-timeout", "120",
                   "--memory-mb", MEMORY_MB]     # the memory bomb faults in half of grading.toml's limit
        procs[mode] = subprocess.Popen(harness(mode, command), cwd=ROOT, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
    try:
        for mode, proc in procs.items():
            prepared[mode].log, _ = proc.communicate(timeout=900)
            prepared[mode].returncode = proc.returncode
        yield prepared
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        for run in prepared.values():
            run.cleanup()


@pytest.mark.parametrize("mode, mechanism", [("root", Mechanism.BWRAP_ROOT), ("user", Mechanism.BWRAP_USERNS)])
def test_the_kernel_reads_writes_and_sees_nothing_it_should_not(runs, mode, mechanism):
    run = runs[mode]
    assert run.returncode == 0, run.log[-3000:]
    results = run.results()
    assert results["extra_data"]["sandbox"]["mechanism"] == mechanism
    assert results["extra_data"]["sandbox"]["reduced"] is False
    assert results["extra_data"]["sandbox"]["forked"] is True      # its kernels came from the fork server
    snoop = run.snoop()
    assert snoop["read"] == [], snoop
    assert all(entries == [] for entries in snoop["listed"].values()), snoop["listed"]
    assert snoop["deleted"] == [] and snoop["grader_processes"] == 0 and snoop["connect"] != 0, snoop
    # Writes may only land in the sandbox's private /dev/shm, which never reaches the host.
    assert all(path.startswith("/dev/shm/") for path in snoop["written"]), snoop["written"]
    assert [p for p in run.escapes if p.exists()] == []
    assert all(p.exists() for p in run.planted)
    assert (run.planted_kernel / "connection-1.json").read_text() == '{"key": "SECRET-OTHER-KERNEL"}'
    # As root the kernel drops to a uid of its own; as an ordinary user it keeps the grader's, in its namespace.
    assert snoop["uid"] == GRADER_UID if mode == "user" else snoop["uid"] not in (0, GRADER_UID)
    assert SandboxPolicy(CONFIG.limits, mechanism).summary() in run.log


def test_an_ordinary_users_kernel_is_bounded_in_processes_and_memory(runs):
    run = runs["user"]
    output = run.results()["output"]
    assert run.results()["status"] == "kernel_died"
    assert "la question q2 a provoqué l'arrêt du noyau : trop de processus" in output.lower(), output
    assert "la question q3 a provoqué l'arrêt du noyau : mémoire épuisée" in output.lower(), output


def test_without_user_namespaces_grading_works_with_the_limits_and_says_isolation_is_reduced(runs):
    run = runs["neither"]
    assert run.returncode == 0, run.log[-3000:]
    results = run.results()
    sandbox = results["extra_data"]["sandbox"]
    assert sandbox["mechanism"] == Mechanism.LIMITS_ONLY and sandbox["reduced"] is True
    assert sandbox["forked"] is False       # no PID namespace: each kernel launched on its own
    assert sandbox["reason"].startswith("bwrap-userns: bwrap: "), sandbox       # bubblewrap's own words
    assert "Sandbox: no namespace. Isolation is reduced (" in run.log
    assert "the kernel can reach the network and every file the grader's user can read" in run.log
    assert "trop de processus" in results["output"] and results["score"] == 0
