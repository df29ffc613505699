"""Forked kernels: one sandbox per grading process, in which a fork server starts each kernel.

A grading kernel spends seconds of CPU importing TensorFlow, Keras and ipykernel before the student's first
cell (docs/performance.md).  `KernelForkServer` starts `kernel/forkserver.py` once, in the same sandbox a kernel gets (policy prefix:
namespaces, file view, uid, limits), with fixed work, capture and kernel directories (the *slot*); each kernel is
then a fork of it, which `ForkedProvisioner` hands to Jupyter as if it had launched it.

Only where the sandbox has a PID namespace (bubblewrap, as root or in a user namespace): there the server's
reset, killing every other process it may signal, reaches exactly what earlier kernels left behind.  Between
two submissions the grader asks for that reset, then empties the slot; a server that does not answer is killed
with its whole namespace, and the next submission starts a new one.  Any failure falls back to launching the
kernel as without the server.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import psutil
from jupyter_client.provisioning import LocalProvisioner

from ..core.config import Limits
from ..core.environment import kernel_env
from .confinement import FileView
from .sandbox import SandboxLauncher, SandboxPolicy, kernel_interpreter
from .watchdog import descendants

START_SECONDS = 120        # importing TensorFlow on a loaded machine
EXIT_SECONDS = 120         # a killed namespace freeing a kernel's pages on a loaded machine
REPLY_SECONDS = 30
FIND_SECONDS = 10
SLOT_DIRS = ("work", "capture", "kernels")
SLOT_PREFIX = "autograder-slot-"
NEW_SLOT_PREFIX = "autograder-newslot-"
OWNER = ".owner"      # locked by the grading process while its server lives


def server_source() -> str:
    return (Path(__file__).resolve().parents[1] / "kernel" / "forkserver.py").read_text(encoding="utf-8")


class ForkServerError(RuntimeError):
    """The fork server did not start, answer or reset (English, for grader_log.txt)."""


class KernelForkServer:
    """The fork server of one sandbox view; ``slot`` holds the only directories its kernels may write."""

    def __init__(self, policy: SandboxPolicy, view: FileView, limits: Limits):
        self.policy = policy
        remove_orphan_slots()
        self.slot, self._owner = _claimed_slot()
        self.dirs = tuple(self.slot / name for name in SLOT_DIRS)
        self.work, self.capture, self.kernels = self.dirs
        for directory in self.dirs:
            directory.mkdir()
        self.user = policy.user
        self.reply_seconds = REPLY_SECONDS
        self._lock = threading.Lock()
        self._channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._log = open(self.slot / "server.log", "ab")
        self._init: psutil.Process | None = None
        try:
            view = replace(view, writable=tuple(map(str, self.dirs)))
            argv = policy.prefix(view, self.user) + [kernel_interpreter(), "-c", server_source()]
            env = dict(kernel_env(limits.threads), HOME=str(self.work), JPY_PARENT_PID="1")
            self.process = subprocess.Popen(argv, stdin=theirs, stdout=self._log, stderr=self._log, env=env,
                                            cwd=self.work, start_new_session=True)
        finally:
            theirs.close()
        try:
            ready = self._receive(START_SECONDS)["ready"]
            self.pid = host_pid(self.process.pid, ready)
            self._init = psutil.Process(host_pid(self.process.pid, 1))     # bubblewrap's init in the namespace
            self.clear()      # the dotfiles its imports wrote: every submission starts from empty directories
        except Exception:
            self.close()
            raise

    # --- requests --------------------------------------------------------------------------
    def _receive(self, timeout: float) -> dict:
        self._channel.settimeout(timeout)
        try:
            data = self._channel.recv(1 << 16)
        except OSError as exc:
            raise ForkServerError(f"the kernel fork server did not answer: {exc}") from exc
        if not data:
            raise ForkServerError(f"the kernel fork server exited (status {self.process.poll()})")
        return json.loads(data)

    def _ask(self, request: dict, fds: list[int] = ()) -> dict:
        with self._lock:
            try:
                socket.send_fds(self._channel, [json.dumps(request).encode()], list(fds))
            except OSError as exc:
                raise ForkServerError(f"the kernel fork server is gone: {exc}") from exc
            return self._receive(self.reply_seconds)

    def spawn(self, connection_file: str, cwd: str, env: dict[str, str], log) -> int:
        """Fork a kernel; its pid as the grader sees it."""
        if self.user is not None:    # written by the grader: the kernel's uid must read it, and bind its sockets
            for path in (os.path.dirname(connection_file), connection_file):
                os.chown(path, self.user.uid, self.user.gid)
        fds = [log.fileno()] if hasattr(log, "fileno") else []
        reply = self._ask({"op": "spawn", "connection_file": connection_file, "cwd": cwd,
                           "env": dict(env, JPY_PARENT_PID="1")}, fds)
        return host_pid(self.pid, reply["pid"])

    def stop_kernels(self) -> None:
        """Kill every process its kernels left; when the server cannot, its whole namespace, and raise."""
        try:
            left = self._ask({"op": "reset"}).get("left")
            if left:
                raise ForkServerError(f"{left} process(es) survived the kernel fork server's reset")
        except ForkServerError:
            self._kill()
            raise

    def clear(self) -> None:
        """Stop every kernel, then empty the slot for the next submission (a dead server's slot goes with it)."""
        if not self.alive():
            return
        self.stop_kernels()      # nothing may write there any more
        try:
            for directory in self.dirs:
                _empty(directory)
        except OSError:
            self.close()
            raise

    def alive(self) -> bool:
        return self.process.poll() is None

    def _kill(self) -> None:
        """The server and, with it, its whole namespace (bubblewrap's init dies: every process in it)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                self.process.kill()
            self.process.wait()
        if self._init is not None:
            _wait_for_exit(self._init, EXIT_SECONDS)

    def close(self) -> None:
        self._channel.close()
        self._kill()
        self._log.close()
        shutil.rmtree(self.slot, ignore_errors=True)
        self._owner.close()


def host_pid(ancestor: int, inner: int) -> int:
    """The pid, as this process sees it, of the descendant of ``ancestor`` that its own PID namespace calls
    ``inner`` (the last entry of /proc's NSpid)."""
    deadline = time.monotonic() + FIND_SECONDS
    while True:
        try:
            for proc in descendants(psutil.Process(ancestor)):
                if _ns_pid(proc.pid) == inner:
                    return proc.pid
        except psutil.Error as exc:
            raise ForkServerError(f"the kernel fork server is gone: {exc}") from exc
        if time.monotonic() > deadline:
            raise ForkServerError(f"no process {inner} under the kernel fork server")
        time.sleep(0.01)


def _wait_for_exit(process: psutil.Process, seconds: float) -> None:
    """Until ``process`` has exited (a zombie, or reaped).  A PID namespace's init exits only once every other
    process in it has: bubblewrap's outer process may be reaped while the processes inside still run."""
    deadline = time.monotonic() + seconds
    try:
        while process.is_running() and process.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.01)
    except psutil.NoSuchProcess:
        pass


def _ns_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


def _empty(directory: Path) -> None:
    """Remove what a kernel left in ``directory`` (nothing runs any more), even in folders it made unwritable."""
    def allow(function, path, _excinfo):
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
        function(path)

    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, onerror=allow)
        else:
            os.unlink(entry.path)


class ForkedKernel:
    """What Jupyter's LocalProvisioner expects of its Popen, for a kernel that is not the grader's child."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._process = psutil.Process(pid)

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                if self._process.status() == psutil.STATUS_ZOMBIE:
                    self.returncode = -1
            except psutil.Error:
                self.returncode = -1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        # Polled: an exited kernel stays a zombie of the server's until its next request.
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkedProvisioner(LocalProvisioner):
    """Jupyter's local provisioner, the kernel forked by ``server`` instead of launched by ``cmd`` (which it
    falls back to when the server fails)."""

    def __init__(self, server: KernelForkServer, **kwargs):
        super().__init__(**kwargs)
        self.server = server

    async def launch_kernel(self, cmd: list[str], **kwargs):
        try:
            pid = self.server.spawn(self.parent.connection_file, str(kwargs.get("cwd") or os.getcwd()),
                                    kwargs.get("env") or {}, kwargs.get("stdout"))
        except ForkServerError:
            return await super().launch_kernel(cmd, **kwargs)
        self.process = ForkedKernel(pid)
        self.pid = self.pgid = pid     # the kernel leads its own session
        self.cwd = kwargs.get("cwd")
        return self.connection_info


def _claimed_slot() -> tuple[Path, object]:
    """A new slot and its owner lock, held until this process closes it or dies.  The slot is made and locked
    under another name: a slot of ours without a lock is an orphan, never one being made."""
    made = Path(tempfile.mkdtemp(prefix=NEW_SLOT_PREFIX)).resolve()
    owner = open(made / OWNER, "w")
    fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
    slot = made.with_name(SLOT_PREFIX + made.name.removeprefix(NEW_SLOT_PREFIX))
    made.rename(slot)
    return slot, owner


def orphan_slots() -> list[Path]:
    """The slots of grading processes that died without closing their server (a Dask worker killed by its nanny):
    their owner lock is free, or missing (an older grader's).  They may hold a submission's files."""
    orphans = []
    for slot in Path(tempfile.gettempdir()).glob(SLOT_PREFIX + "*"):
        try:
            with open(slot / OWNER) as owner:
                fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:     # its grading process is alive
            continue
        except OSError:
            pass
        orphans.append(slot)
    return orphans


def remove_orphan_slots() -> None:
    for slot in orphan_slots():
        shutil.rmtree(slot, ignore_errors=True)


# --- one server per grading process -----------------------------------------------------------------------

_servers: dict[tuple, KernelForkServer] = {}


def fork_server(policy: SandboxPolicy, view: FileView | None, limits: Limits, log=None) -> KernelForkServer | None:
    """This process's server for ``view`` (its writable paths aside), started on first use; None where kernels are
    not forked (no PID namespace, no file view) or the server cannot start (``log`` says why, in English)."""
    if view is None or not policy.forks_kernels:
        return None
    key = (policy, policy.kernel_view(replace(view, writable=())))
    server = _servers.get(key)
    if server is not None and server.alive():
        return server
    close_servers()
    try:
        server = KernelForkServer(policy, replace(view, writable=()), limits)
    except (ForkServerError, OSError, KeyError, ValueError) as exc:
        if log:
            log(f"kernel fork server: {exc}; kernels start without it")
        return None
    _servers[key] = server
    return server


def close_servers() -> None:
    while _servers:
        _servers.popitem()[1].close()


atexit.register(close_servers)


class ForkedLauncher(SandboxLauncher):
    """The grader's sandboxed kernel, forked by ``server``: its kernelspec, connection file and sockets in the
    server's slot (the only place the kernel and the grader both see)."""

    def __init__(self, limits: Limits, view: FileView, server: KernelForkServer):
        super().__init__(limits, view, server.policy)
        self.server = server

    def scratch_root(self) -> Path:
        return self.server.kernels

    def provisioner(self, km) -> ForkedProvisioner:
        km.kernel_id = km.kernel_id or str(uuid.uuid4())
        return ForkedProvisioner(self.server, kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
