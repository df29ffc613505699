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

import functools
import json
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from ..core.config import Limits
from ..core.environment import kernel_env
from .launch import Launcher
from .confinement import FileView, KERNEL_UID_BASE, KernelUser, PROBE_SECONDS, bwrap_prefix, kernel_prefix, limit_words, namespaces_available, network_isolation, sys_base
from .watchdog import Watchdog


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
