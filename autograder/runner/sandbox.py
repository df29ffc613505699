"""Sandbox: how a student's kernel is launched and kept within its limits.

One policy (`SandboxPolicy`) says how, picking the strongest mechanism this machine offers
(`SandboxPolicy.detect`):

- ``bwrap-root``: the grader is root and bubblewrap is installed.  The kernel gets its own
  network, mount, PID, IPC and UTS namespaces, a read-only view of the filesystem in which
  the project, the inboxes, the output folder, ``/tmp``, ``/var/tmp``, the grader's home and
  Jupyter's runtime directory are hidden (empty, read-only tmpfs), only its work and capture
  directories are writable, and it drops to a uid of its own (`setpriv`, no groups, no
  capabilities, no new privileges): it cannot read what only root may read, and
  RLIMIT_NPROC binds it.  The uid is a base plus the grader's pid, so concurrent kernels
  never share a uid, nor a process budget.
- ``unshare-root``: the grader is root without bubblewrap: `unshare --net --mount` and a
  mount script (`kernel_prefix`), then the same uid drop; no PID namespace.
- ``bwrap-userns``: the grader is an ordinary user and the kernel allows unprivileged user
  namespaces: bubblewrap builds the same namespaces and the same view inside a user
  namespace of its own.  The kernel keeps the grader's uid (nothing else is mapped), so it
  may read, never write, what that user may read outside the hidden trees; RLIMIT_NPROC
  counts its own tasks only (rlimit counts are per user namespace).
- ``limits-only``: no namespace is available (user namespaces disabled, bubblewrap missing,
  a container without the right): the limits, watchdog, timeouts and clean scoring only.

In every case `prlimit` sets limits on the kernel process: file size, CPU time, core dumps,
and the number of tasks where the kernel has a uid or a user namespace of its own.  Memory
is watched, not capped with RLIMIT_AS: TensorFlow maps far more virtual memory than it
uses, so a watchdog sums the resident memory of the kernel's process tree and kills the
tree past the limit; the same watchdog bounds the number of processes.  With a network
namespace the kernel talks to the grader over IPC sockets instead of TCP.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import psutil
from jupyter_core.paths import jupyter_runtime_dir

from ..core import messages
from ..core.config import Config, Limits
from ..core.environment import kernel_env
from .launch import Launcher

POLL_SECONDS = 0.1


STAGING = "/mnt"     # an empty tmpfs is mounted here, inside the kernel's namespace only
KERNEL_UID_BASE = 2_000_000
TASKS_PER_PROCESS = 16    # RLIMIT_NPROC counts threads too: TensorFlow's pools fit well within this
HIDDEN_TMPFS_BYTES = 16 * 2**20     # each hidden tree (bubblewrap), read-only once its kept paths are back
SHM_BYTES = 64 * 2**20              # the kernel's private /dev/shm (bubblewrap)
PROBE_SECONDS = 20


@dataclass(frozen=True)
class KernelUser:
    uid: int
    gid: int


@functools.lru_cache(maxsize=4)
def namespaces_available(*flags: str) -> bool:
    """Whether `unshare` can create these namespaces here (root, or user namespaces allowed)."""
    unshare = shutil.which("unshare")
    if not unshare:
        return False
    try:
        return subprocess.run([unshare, *flags, "--", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def network_isolation() -> bool:
    return namespaces_available("--net")


@dataclass(frozen=True)
class FileView:
    """What the kernel may see of the filesystem: hidden trees, minus the paths kept."""
    hide: tuple[str, ...]
    read_only: tuple[str, ...]
    writable: tuple[str, ...]

    def usable(self) -> FileView:
        """Existing paths only; never hide the root, the staging area, or the interpreter unless kept."""
        ro = tuple(os.path.realpath(p) for p in self.read_only if os.path.exists(p))
        rw = tuple(os.path.realpath(p) for p in self.writable if os.path.exists(p))
        hide = [h for h in dict.fromkeys(os.path.realpath(p) for p in self.hide)
                if h != "/" and os.path.isdir(h) and not _inside(STAGING, h)
                and (not _inside(sys_base(), h) or sys_base() in ro)]
        # A tree inside another hidden tree is hidden with it (and has no mount point left), unless a
        # kept path between them brings it back into view: then it is hidden again inside that path.
        kept = ro + rw
        hide = [h for h in hide if not any(o != h and _inside(h, o) and not any(
            _inside(h, k) and _inside(k, o) for k in kept) for o in hide)]
        return FileView(tuple(hide), ro, rw)


def submission_view(config: Config, job_dirs, *, writable, mnist: Path) -> FileView:
    """What a student's kernel may see: the project, temporary files, the submission's inbox and output folders and
    Jupyter's runtime directory hidden; the venv and MNIST read-only; only ``writable`` (its work and capture
    directories) writable.  The policy hides more (`SandboxPolicy.kernel_view`)."""
    return FileView(hide=(str(config.root), tempfile.gettempdir(), *map(str, job_dirs), jupyter_runtime_dir()),
                    read_only=(sys.prefix, str(mnist)), writable=tuple(map(str, writable)))


def sys_base() -> str:
    return os.path.realpath(sys.base_prefix)


def _depth(path: str) -> int:
    return path.rstrip("/").count("/")


def _inside(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _mount_script(view: FileView, user: KernelUser | None) -> str:
    """Shell run as root inside the new mount namespace, before the kernel starts (as ``user``)."""
    keep = [(p, True) for p in view.read_only] + [(p, False) for p in view.writable]
    q = shlex.quote
    lines = ["set -e", "mount --make-rprivate /", f"mount -t tmpfs -o size=64k,mode=700 tmpfs {STAGING}"]
    for i, (path, _) in enumerate(keep):
        stage = f"{STAGING}/{i}"
        lines += [f"mkdir -p {stage}" if os.path.isdir(path) else f"touch {stage}", f"mount --bind {q(path)} {stage}"]
    # Outermost first, so a kept path inside a hidden tree, or a hidden tree (or a read-only path)
    # inside a kept one, is mounted over what contains it, never under.
    hides = [(h, None, False) for h in view.hide]
    binds = [(path, i, read_only) for i, (path, read_only) in enumerate(keep) if any(_inside(path, h) for h in view.hide)]
    for path, stage, read_only in sorted(hides + binds, key=lambda m: _depth(m[0])):
        if stage is None:
            lines.append(f"mount -t tmpfs -o size=16m,mode=755 tmpfs {q(path)}")
            continue
        make = f"mkdir -p {q(path)}" if os.path.isdir(path) else \
            f"mkdir -p {q(os.path.dirname(path))} && touch {q(path)}"
        lines += [make, f"mount --bind {STAGING}/{stage} {q(path)}"]
        if read_only:
            lines.append(f"mount -o remount,bind,ro {q(path)}")
    if user is None:
        return "\n".join(lines) + '\nexec "$@"'
    # Its own directories (work, capture, connection file and sockets) become the kernel user's.
    lines += [f"chown -R {user.uid}:{user.gid} {q(path)}" for path in view.writable]
    return "\n".join(lines) + (f'\nexec {shutil.which("setpriv")} --reuid={user.uid} --regid={user.gid} '
                               '--clear-groups --no-new-privs -- "$@"')


def kernel_prefix(limits: Limits, view: FileView | None = None, user: KernelUser | None = None) -> list[str]:
    """Command words put before the kernel's own command line."""
    prefix: list[str] = []
    flags = []
    if limits.isolate_network and network_isolation():
        flags.append("--net")
    if view is not None and user is not None:
        # The grader's home is hidden too; the interpreter is kept (pyenv may live in a 0700 home).
        view = replace(view, hide=view.hide + (os.path.expanduser("~"),), read_only=view.read_only + (sys_base(),))
    view = view.usable() if view is not None and limits.isolate_filesystem else None
    if view is not None and view.hide and namespaces_available("--mount"):
        flags.append("--mount")
    if flags:
        prefix += [shutil.which("unshare"), *flags, "--"]
    if "--mount" in flags:
        prefix += ["/bin/sh", "-c", _mount_script(view, user), "sandbox"]
    elif user is not None:
        raise ValueError("a kernel user needs the mount namespace")
    return prefix + limit_words(limits, limits.max_processes * (TASKS_PER_PROCESS if user is not None else 1))


def limit_words(limits: Limits, tasks: int | None) -> list[str]:
    """`prlimit` words: file size, CPU time (2 x budget x threads), no core dump, and ``tasks`` (RLIMIT_NPROC)
    when the count is the kernel's own (a uid or a user namespace of its own); nothing without prlimit."""
    prlimit = shutil.which("prlimit")
    if not prlimit:
        return []
    cpu = int(limits.submission_timeout * max(1, limits.threads) * 2)
    words = [prlimit, f"--fsize={limits.max_file_mb * 2**20}", f"--cpu={cpu}", "--core=0"]
    return words + ([f"--nproc={tasks}"] if tasks is not None else []) + ["--"]


# --- bubblewrap: the same view, built by a tool made for it (root, or an ordinary user) ----------------------

@functools.lru_cache(maxsize=1)
def bwrap_features() -> frozenset[str]:
    """The options this bubblewrap knows (--size, --perms and --disable-userns came with 0.5 to 0.8)."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return frozenset()
    try:
        text = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=PROBE_SECONDS).stdout
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(word for line in text.splitlines() for word in line.split()[:1] if word.startswith("--"))


def _modified(option: str, value: str, features: frozenset[str]) -> list[str]:
    """A modifier of bubblewrap's next operation (--size, --perms), left out by a bubblewrap without it."""
    return [option, value] if option in features else []


def _tmpfs(path: str, size: int, perms: str | None, features: frozenset[str]) -> list[str]:
    return (_modified("--size", str(size), features) + (_modified("--perms", perms, features) if perms else [])
            + ["--tmpfs", path])


def _between(tree: str, path: str) -> list[str]:
    """The directories strictly between ``tree`` and ``path``, outermost first."""
    parts = Path(path).relative_to(tree).parts[:-1]
    return [os.path.join(tree, *parts[:i]) for i in range(1, len(parts) + 1)]


def _view_words(view: FileView, features: frozenset[str]) -> list[str]:
    """Hidden trees as empty tmpfs, kept paths bound back (outermost first), then the tmpfs made read-only."""
    kept = [(p, "--ro-bind") for p in view.read_only] + [(p, "--bind") for p in view.writable]
    words: list[str] = []
    for path, op in sorted([(h, None) for h in view.hide] + kept, key=lambda m: _depth(m[0])):
        if op is None:
            words += _tmpfs(path, HIDDEN_TMPFS_BYTES, None, features)
            continue
        hidden = [h for h in view.hide if h != path and _inside(path, h)]
        if hidden:     # bubblewrap would make the missing directories 0700: the kernel's uid could not pass
            for directory in _between(max(hidden, key=_depth), path):
                words += _modified("--perms", "0755", features) + ["--dir", directory]
        words += [op, path, path]
    return words + [w for h in view.hide if h not in {p for p, _ in kept} for w in ("--remount-ro", h)]


def bwrap_prefix(limits: Limits, view: FileView | None, user: KernelUser | None, *, userns: bool) -> list[str]:
    """Command words for bubblewrap: namespaces, a read-only root with ``view`` (already usable()) applied,
    then, as root, the uid drop; ignoring SIGINT outside, since Jupyter interrupts the kernel's whole group."""
    features = bwrap_features()
    # In its PID namespace the kernel's parent is bubblewrap's init (pid 1), which ipykernel would take for its
    # parent's death; JPY_PARENT_PID=1 ("init never goes away") turns its parent poller off: --die-with-parent
    # kills the sandbox with the grader instead.
    words = [shutil.which("bwrap"), "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
             "--setenv", "JPY_PARENT_PID", "1"]
    if limits.isolate_network:
        words.append("--unshare-net")
    if userns:
        words += ["--unshare-user"] + (["--disable-userns"] if "--disable-userns" in features else [])
    words += ["--ro-bind" if view else "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    words += _tmpfs("/dev/shm", SHM_BYTES, "1777", features)
    if view:
        words += _view_words(view, features)
    chown = ""
    if user is not None:
        words += [w for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP") for w in ("--cap-add", cap)]
        words += ["--", shutil.which("setpriv"), f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups",
                  "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        if view and view.writable:   # its work, capture and connection files become the kernel user's
            chown = f"chown -R {user.uid}:{user.gid} -- {' '.join(map(shlex.quote, view.writable))}; "
    tasks = limits.max_processes * TASKS_PER_PROCESS
    return (["/bin/sh", "-c", f'set -e; trap "" INT; {chown}exec "$@"', "sandbox"] + words + ["--"]
            + limit_words(limits, tasks))


# --- The policy: which mechanism, what it gives, and the command it builds --------------------------------

class Mechanism(StrEnum):
    BWRAP_ROOT = "bwrap-root"
    UNSHARE_ROOT = "unshare-root"
    BWRAP_USERNS = "bwrap-userns"
    LIMITS_ONLY = "limits-only"


MECHANISM_TEXT = {
    Mechanism.BWRAP_ROOT: "bubblewrap, grader running as root",
    Mechanism.UNSHARE_ROOT: "unshare, grader running as root (bubblewrap is not installed: no PID namespace)",
    Mechanism.BWRAP_USERNS: "bubblewrap in an unprivileged user namespace (the kernel keeps the grader's uid "
                            "inside namespaces of its own)",
    Mechanism.LIMITS_ONLY: "no namespace",
}
ROOT_MECHANISMS = (Mechanism.BWRAP_ROOT, Mechanism.UNSHARE_ROOT)
NAMESPACES = {Mechanism.BWRAP_ROOT: ("network", "mount", "PID"), Mechanism.UNSHARE_ROOT: ("network", "mount"),
              Mechanism.BWRAP_USERNS: ("network", "mount", "PID"), Mechanism.LIMITS_ONLY: ()}


def home_dirs() -> tuple[str, ...]:
    """The grader's home, as $HOME says and as the password database says."""
    try:
        recorded = (pwd.getpwuid(os.getuid()).pw_dir,)
    except KeyError:
        recorded = ()
    return (os.path.expanduser("~"),) + recorded


def kernel_interpreter() -> str:
    """This interpreter, its directories resolved: a venv reached through a symlink, or inside a tree the kernel
    does not see, still starts.  The file name is kept, not resolved: resolving the venv's python link to the
    base interpreter would lose the venv (Python finds pyvenv.cfg next to the path it was started by)."""
    return os.path.join(os.path.realpath(os.path.dirname(sys.executable)), os.path.basename(sys.executable))


@dataclass(frozen=True)
class SandboxPolicy:
    """How this grader's kernels are isolated; one object for root, ordinary users and neither."""
    limits: Limits
    mechanism: Mechanism
    reason: str = ""      # English: why no stronger mechanism is used here

    @staticmethod
    def detect(limits: Limits) -> SandboxPolicy:
        return _detect(limits)

    @property
    def user(self) -> KernelUser | None:
        """The kernel's own unprivileged uid, when the grader is root and hides what that uid must not see."""
        if self.mechanism not in ROOT_MECHANISMS or not (self.limits.kernel_user and self.limits.isolate_filesystem):
            return None
        uid = KERNEL_UID_BASE + os.getpid()
        return KernelUser(uid, uid)

    @property
    def network_cut(self) -> bool:
        if self.mechanism is Mechanism.UNSHARE_ROOT:     # net and mount namespaces are asked for separately
            return self.limits.isolate_network and network_isolation()
        return "network" in NAMESPACES[self.mechanism] and self.limits.isolate_network

    @property
    def files_hidden(self) -> bool:
        return "mount" in NAMESPACES[self.mechanism] and self.limits.isolate_filesystem

    @property
    def pid_namespace(self) -> bool:
        return "PID" in NAMESPACES[self.mechanism]

    @property
    def forks_kernels(self) -> bool:
        """Whether kernels may be forked from a warm server in the sandbox (runner/forked.py): its PID
        namespace takes them down with it, and its file view hides the grader's files from them."""
        return self.pid_namespace and self.files_hidden

    @property
    def reduced(self) -> bool:
        return not (self.network_cut and self.files_hidden)

    def kernel_view(self, view: FileView | None) -> FileView | None:
        """``view`` as bubblewrap applies it: the grader's home, /var/tmp and its runtime directory hidden too
        (the interpreter is kept, as pyenv may live in a home), existing real paths only."""
        if view is None or not self.limits.isolate_filesystem:
            return None
        extra = home_dirs() + ("/var/tmp", f"/run/user/{os.getuid()}")
        return replace(view, hide=view.hide + extra, read_only=view.read_only + (sys_base(),)).usable()

    def prefix(self, view: FileView | None, user: KernelUser | None = None) -> list[str]:
        """Command words put before the kernel's own command line (``user``: the uid it drops to, as root)."""
        if self.mechanism is Mechanism.UNSHARE_ROOT:
            return kernel_prefix(self.limits, view, user)
        if self.mechanism is Mechanism.LIMITS_ONLY:
            return limit_words(self.limits, None)     # the grader's own uid: its task count is not the kernel's
        return bwrap_prefix(self.limits, self.kernel_view(view), user, userns=self.mechanism is Mechanism.BWRAP_USERNS)

    def isolation(self) -> dict:
        """What held for a kernel, for results.json's extra_data (and `describe_isolation`)."""
        held = {"mechanism": str(self.mechanism), "network_cut": self.network_cut, "files_hidden": self.files_hidden,
                "pid_namespace": self.pid_namespace, "own_uid": self.user is not None, "reduced": self.reduced}
        return held | ({"reason": self.reason} if self.reason else {})

    def summary(self) -> str:
        return describe_isolation(self.isolation())

    def probe(self) -> str | None:
        """None when this mechanism starts a command here, else why not (English)."""
        if self.mechanism is Mechanism.LIMITS_ONLY:
            return None
        if self.mechanism is Mechanism.UNSHARE_ROOT:
            if not namespaces_available("--mount"):
                return "unshare cannot create a mount namespace"
            return None if shutil.which("setpriv") else "setpriv is not installed"
        if not shutil.which("bwrap"):
            return "bubblewrap (bwrap) is not installed"
        if self.user is not None and not shutil.which("setpriv"):
            return "setpriv is not installed"
        return run_probe(self.prefix(FileView((), (), ()), self.user) + ["true"])


def describe_isolation(isolation: dict) -> str:
    """One English line for the instructor: the mechanism, and plainly when isolation is reduced."""
    mechanism = isolation.get("mechanism", "?")
    text = f"Sandbox: {MECHANISM_TEXT.get(mechanism, mechanism)}"
    if isolation.get("own_uid"):
        text += ", the kernel running as a uid of its own"
    if not isolation.get("reduced"):
        return text + "; network cut; project, inboxes, output folder and /tmp hidden."
    lost = [what for what, held in (("the network", isolation.get("network_cut")),
                                    ("every file the grader's user can read", isolation.get("files_hidden")))
            if not held]
    why = f" ({isolation['reason']})" if isolation.get("reason") else ""
    return (f"{text}. Isolation is reduced{why}: the kernel can reach {' and '.join(lost)}; limits, watchdog, "
            "timeouts and clean scoring still hold. Run `autograder doctor` for details.")


def run_probe(argv: list[str]) -> str | None:
    """Run a probe command; None when it succeeds, else the last line it printed (English, from the tool)."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_SECONDS, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode == 0:
        return None
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


@functools.lru_cache(maxsize=8)
def _detect(limits: Limits) -> SandboxPolicy:
    """The strongest mechanism that starts here: as root, never a user namespace (its root would be root)."""
    reasons = []
    candidates = ROOT_MECHANISMS if os.geteuid() == 0 else (Mechanism.BWRAP_USERNS,)
    for mechanism in candidates:
        policy = SandboxPolicy(limits, mechanism)
        error = policy.probe()
        if error is None:
            return replace(policy, reason="; ".join(reasons))
        reasons.append(f"{mechanism}: {error}")
    return SandboxPolicy(limits, Mechanism.LIMITS_ONLY, reason="; ".join(reasons))


@dataclass
class Breach:
    kind: str        # "memory" or "processes"
    message: str     # French, for the student


def _total(tree, kind: str) -> int:
    """Resident memory of a process tree.  RSS is cheap but counts the pages forked children
    share with their parent once per process; PSS (read only to confirm) splits them fairly."""
    total = 0
    for proc in tree:
        try:
            info = proc.memory_info() if kind == "rss" else proc.memory_full_info()
            total += getattr(info, kind, info.rss)
        except psutil.Error:
            pass
    return total


def _children_pids(pid: int) -> list[int] | None:
    """The pids of ``pid``'s children as its threads' /proc children files list them; None when the
    kernel has no such files.  Ten times a second per kernel, this reads the tree's own files only,
    where psutil reads every process's stat on the machine (about 1 ms, more on a busy grading host)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    pids = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += map(int, f.read().split())
        except OSError:
            if not os.path.exists(f"/proc/{pid}/task/{task}"):
                continue        # a thread that ended meanwhile
            return None         # no CONFIG_PROC_CHILDREN, or not readable here: psutil's way then
    return pids


def descendants(root: psutil.Process) -> list[psutil.Process]:
    """Every process below ``root``; a child forked while this runs is found at the next poll."""
    if not root.is_running():
        raise psutil.NoSuchProcess(root.pid)
    found, todo = [], [root.pid]
    while todo:
        pids = _children_pids(todo.pop())
        if pids is None:
            return root.children(recursive=True)
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                found.append(psutil.Process(pid))
                todo.append(pid)
    return found


class Watchdog(threading.Thread):
    """Kills the kernel's whole process tree when it exceeds the memory or process limit."""

    def __init__(self, pid: int, limits: Limits):
        super().__init__(daemon=True, name=f"watchdog-{pid}")
        self.pid = pid
        self.memory = limits.memory_mb * 2**20
        self.limits = limits
        self.breach: Breach | None = None
        self._stopping = threading.Event()   # not _stop: that would shadow Thread._stop, used by join()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stopping.wait(POLL_SECONDS):
            try:
                tree = [root] + descendants(root)
            except psutil.Error:
                return
            if len(tree) > self.limits.max_processes:
                self._kill(tree, Breach("processes", messages.too_many_processes(self.limits.max_processes)))
                return
            if _total(tree, "rss") > self.memory and _total(tree, "pss") > self.memory:
                self._kill(tree, Breach("memory", messages.out_of_memory(self.limits.memory_mb)))
                return

    def _kill(self, tree, breach: Breach) -> None:
        self.breach = breach
        for proc in tree:             # those that left the kernel's session too
            try:
                proc.kill()
            except psutil.Error:
                pass
        # The kernel leads its own session, so its process group also holds children
        # forked after the listing above; kill until the group is empty.
        for _ in range(50):
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            except PermissionError:
                return
            time.sleep(POLL_SECONDS / 2)


class SandboxLauncher(Launcher):
    """The grader's kernel: this very interpreter, behind its policy's prefix, watched by a `Watchdog`."""

    kernel_name = "autograder-python"

    def __init__(self, limits: Limits, view: FileView | None, policy: SandboxPolicy | None = None):
        self.limits = limits
        self.view = view
        self.policy = policy or SandboxPolicy.detect(limits)
        self.user = self.policy.user if view is not None else None

    def argv(self, view: FileView | None) -> list[str]:
        """The kernel's whole command line, ``{connection_file}`` left for Jupyter to fill in."""
        return self.policy.prefix(view, self.user) + [kernel_interpreter(), "-m", "ipykernel_launcher",
                                                      "-f", "{connection_file}"]

    def kernel_spec_dirs(self, scratch: Path) -> list[str]:
        """A kernelspec for this very interpreter (no other installed 'python3' is picked), sandboxed."""
        spec = scratch / "kernels" / self.kernel_name
        spec.mkdir(parents=True, exist_ok=True)
        view = self.view
        if view is not None:   # the kernel needs its own connection file and sockets, nothing else here
            view = replace(view, writable=view.writable + (str(scratch),))
        (spec / "kernel.json").write_text(json.dumps({"argv": self.argv(view), "display_name": "autograder",
                                                      "language": "python"}))
        return [str(scratch / "kernels")]

    def env(self, workdir: Path) -> dict[str, str]:
        # Its dotfiles (IPython, Keras, Matplotlib) go to its scratch directory, never to a home.
        return dict(kernel_env(self.limits.threads), HOME=str(workdir))

    def ipc_path(self, scratch: Path) -> str | None:
        # No loopback shared with the grader inside the kernel's network namespace: talk over Unix sockets.
        return str(scratch / "ipc") if self.policy.network_cut else None

    def watch(self, pid: int) -> Watchdog:
        return Watchdog(pid, self.limits)
