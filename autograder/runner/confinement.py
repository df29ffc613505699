"""Confinement: the file view a kernel gets and the commands that build it around the kernel.

`unshare` with a mount script (`kernel_prefix`), or bubblewrap (`bwrap_prefix`), each behind `prlimit`
(`limit_words`); sandbox.py's policy picks one.  What each mechanism gives is told there.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from jupyter_core.paths import jupyter_runtime_dir

from ..core.config import Config, Limits

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
