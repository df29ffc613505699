"""The kernel fork server: runs inside a grading process's sandbox and forks one Jupyter kernel per request.

Every grading kernel imports TensorFlow, Keras and ipykernel (seconds of CPU).  This server imports them once and
forks each kernel from that state, in the same sandbox (namespaces, file view, uid, limits) a kernel would get.
It is shipped as source (``python -c``), like the runtime (runtime/), and imports nothing of the package.

It keeps each submission apart from the next: it never runs student code, it is not dumpable (a kernel of the
same uid can neither trace it nor read its memory), and before each fork, and when asked, it kills every other
process it may signal (in its PID namespace: whatever a kernel left behind), empties the sandbox's /dev/shm and
removes System V IPC objects.  The grader empties the work directories once nothing is left running.

Protocol, on the SOCK_SEQPACKET socket that is its stdin: one JSON request per message, the kernel's log file
passed along with ``spawn``; one JSON reply each.  ``{"op": "spawn", "connection_file", "cwd", "env"}`` answers
``{"pid": ...}`` once the kernel leads its own session; ``{"op": "reset"}`` answers ``{"left": n}``, the number of
processes still alive.  End of input: it resets and exits.
"""

import ctypes
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

PR_SET_DUMPABLE = 4
PRELOAD = ("numpy", "tensorflow", "keras", "ipykernel.kernelapp")
MESSAGE_BYTES = 1 << 20
RESET_ROUNDS = 200


def main():
    # Like ipykernel_launcher: the working directory must not shadow a module while the server imports.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")
    channel = socket.socket(fileno=0)
    for name in PRELOAD:
        __import__(name)
    # What the imports made is never garbage: a kernel's collector skipping it leaves those pages shared.
    gc.collect()
    gc.freeze()
    _reply(channel, {"ready": os.getpid()})
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(channel, MESSAGE_BYTES, 1)
        except OSError:
            data, fds = b"", []
        if not data:
            break
        request = json.loads(data)
        if request.get("op") == "spawn":
            _reply(channel, _spawn(channel, request, fds))
        else:
            _reply(channel, {"left": reset()})
    reset()


def _reply(channel, message):
    channel.send(json.dumps(message).encode())


def reset():
    """Kill every process but this one and the namespace's init; return how many could not be killed."""
    me = os.getpid()
    left = []
    for _ in range(RESET_ROUNDS):
        try:
            os.kill(-1, signal.SIGKILL)    # all processes it may signal, at once (forks wait for it)
        except ProcessLookupError:
            pass
        _reap()
        left = [pid for pid in _living() if pid not in (1, me)]
        if not left:
            break
        time.sleep(0.005)
    _empty("/dev/shm")
    _remove_ipc()
    return len(left)


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _living():
    """Pids of this PID namespace that are not zombies (the init reaps those it inherits)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    state = fh.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in (b"Z", b"X"):
                pids.append(int(name))
    return pids


def _empty(directory):
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def _remove_ipc():
    """System V shared memory, semaphores and queues outlive their processes; a kernel may have made some."""
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                if len(fh.read().splitlines()) <= 1:
                    continue
        except OSError:
            continue
        ipcrm = shutil.which("ipcrm")
        if ipcrm:
            subprocess.run([ipcrm, "--all"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        return


def _spawn(channel, request, fds):
    reset()
    sys.stdout.flush()
    sys.stderr.flush()
    ready, done = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(ready)
            channel.close()
            os.setsid()
            os.close(done)     # the server learns the kernel leads its own session: interrupts reach its group
            status = _kernel(request, fds[0] if fds else None)
        finally:
            os._exit(status)
    os.close(done)
    os.read(ready, 1)
    os.close(ready)
    for fd in fds:
        os.close(fd)
    return {"pid": pid}


def _kernel(request, log):
    """In the forked child: become the kernel ipykernel_launcher would have started."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(log if log is not None else null, 1)
    os.dup2(log if log is not None else null, 2)
    os.close(null)
    if log is not None:
        os.close(log)
    # A fresh interpreter's dispositions (the server ignores SIGINT, like the shell that started it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    from ipykernel import kernelapp
    sys.argv = [os.path.join(os.path.dirname(os.path.dirname(kernelapp.__file__)), "ipykernel_launcher.py"),
                "-f", request["connection_file"]]
    try:
        kernelapp.launch_new_instance()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


if __name__ == "__main__":
    main()
