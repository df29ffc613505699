"""`autograder doctor`: what this machine allows the sandbox, and which mechanism grading will use (English)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..core.config import Config
from ..runner.canary import SandboxError, check_sandbox
from ..runner.sandbox import Mechanism, SandboxPolicy, namespaces_available

INSTALL_BWRAP = "not installed (Debian/Ubuntu: apt-get install bubblewrap; Fedora/RHEL: dnf install bubblewrap)"


def _yes(held: bool, detail: str = "") -> tuple[str, str]:
    return ("yes" if held else "no"), detail


def _bwrap() -> tuple[str, str]:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "no", INSTALL_BWRAP
    try:
        version = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        version = "version unknown"
    return "yes", f"{bwrap} ({version})"


def capabilities(policy: SandboxPolicy) -> list[tuple[str, str, str]]:
    """(what, yes/no, detail) for each thing the sandbox may use on this machine."""
    root = os.geteuid() == 0
    as_user = () if root else ("--user", "--map-root-user")    # an ordinary user needs a user namespace first
    rows = [
        ("user namespaces", *_yes(namespaces_available("--user", "--map-root-user"),
                                  "" if root else "needed by an ordinary user for every namespace below")),
        ("mount namespaces", *_yes(namespaces_available(*as_user, "--mount"))),
        ("network namespaces", *_yes(namespaces_available(*as_user, "--net"))),
        ("PID namespaces", *_yes(namespaces_available(*as_user, "--pid", "--fork"))),
        ("uid drop", *_yes(root and bool(shutil.which("setpriv")),
                           "each kernel runs as a uid of its own (setpriv)" if root
                           else f"the grader is not root (uid {os.geteuid()}): the kernel keeps its uid")),
        ("limits", *_yes(bool(shutil.which("prlimit")), "prlimit: file size, CPU time, core dumps"
                         + (", tasks" if policy.user is not None or policy.mechanism is Mechanism.BWRAP_USERNS else "")
                         + "; watchdog: memory, processes")),
        ("bubblewrap", *_bwrap()),
        ("network cut", *_yes(policy.network_cut, "the kernel has no network" if policy.network_cut
                              else "the kernel shares the grader's network")),
    ]
    return rows


def kernel_starts(policy: SandboxPolicy) -> str:
    """Whether `grade` can fork its kernels from a warm server (README, Performance) or launches each one."""
    if policy.forks_kernels:
        return "Kernels: forked from one warm fork server per grading process (about 0.5 s each)."
    return ("Kernels: launched one by one, each importing TensorFlow and Keras again (about 4 s more per "
            "submission): forking them needs a PID namespace and hidden files, which bubblewrap gives.")


def doctor(config: Config, config_path: Path) -> tuple[list[str], bool]:
    """The report's lines, and whether a sandboxed test kernel started."""
    policy = SandboxPolicy.detect(config.limits)
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}, an ordinary user"
    lines = [f"Sandbox capabilities of this machine (grader running as {who}):"]
    lines += [f"  {what:<20}{held:<5}{detail}".rstrip() for what, held, detail in capabilities(policy)]
    lines += [f"Grading will use: {policy.mechanism}.", policy.summary(), kernel_starts(policy)]
    if policy.reason and not policy.reduced:     # a reduced summary says why already
        lines.append(f"Stronger mechanisms not used here: {policy.reason}")
    with tempfile.TemporaryDirectory(prefix="autograder-doctor-") as tmp:
        try:
            check_sandbox(config, config_path, [], Path(tmp) / "out")
        except SandboxError as exc:
            return lines + [f"Test kernel: FAILED, {exc}"], False
    return lines + ["Test kernel: started in the sandbox and ran a cell."], True
