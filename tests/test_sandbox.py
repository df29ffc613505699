"""Fast tests of the sandbox: the watchdog over a real process tree, the commands the policy builds (unshare and
its mount script, bubblewrap, limits) with the host's tools and namespaces chosen by the test, and those commands
run for real in namespaces of their own."""

import os
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from autograder.core.config import Limits
from autograder.runner import confinement, sandbox
from autograder.runner import watchdog as watching
from autograder.runner.confinement import FileView, KernelUser, bwrap_prefix, kernel_prefix, namespaces_available
from autograder.runner.sandbox import Mechanism, SandboxLauncher, SandboxPolicy, describe_isolation, kernel_interpreter
from autograder.runner.watchdog import Watchdog


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


def patch_all(monkeypatch, name: str, value) -> None:
    """Replace ``name`` where the sandbox's modules look it up (the policy, the confinement, the watchdog)."""
    for module in (sandbox, confinement, watching):
        if hasattr(module, name) or name == "open":
            monkeypatch.setattr(module, name, value, raising=False)


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


def test_a_cell_clock_counts_waits_whole_and_computation_as_the_processor_time_it_got():
    clock = watching.CellClock(limit=10)
    clock.advance(100.0, 5.0)                 # the first poll only sets the reference
    clock.advance(101.0, 5.0)                 # asleep for a second: a second
    clock.advance(102.0, 5.4)                 # ready to run, given 40 % of a processor: 0.4 s
    clock.advance(103.0, 7.0)                 # two threads busy: one second, not more than the wall's
    clock.advance(104.0, 6.0)                 # a child that ended unwaited took its time with it: a wait
    assert clock.seconds == pytest.approx(3.4) and not clock.expired


def watched(code: str, limit: float, cpu: int | None = None):
    """``code`` in a process of its own session (as a kernel is), watched with a running cell of ``limit``
    seconds; pinned to processor ``cpu`` when given.  Returns the process, the watchdog and the cell's clock."""
    # SIGINT raises KeyboardInterrupt, as in a kernel running a cell, even where this process inherited it ignored
    # (a background job of a non-interactive shell does).
    obeys = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
    proc = subprocess.Popen([sys.executable, "-c", obeys + code], start_new_session=True)
    if cpu is not None:
        os.sched_setaffinity(proc.pid, {cpu})
    watchdog = Watchdog(proc.pid, Limits())
    clock = watchdog.time_cell(limit)
    watchdog.start()
    return proc, watchdog, clock


COMPUTE = "import time\nt = time.process_time()\nwhile time.process_time() - t < {seconds}: pass\n"


def test_a_cell_slowed_by_other_processes_is_not_out_of_time_and_one_that_computes_on_is():
    cpu = min(os.sched_getaffinity(0))
    # Each in a session of its own, as the watched process: the scheduler shares a processor fairly between
    # sessions (autogroups), so each of the three gets a third of it, whatever else this machine runs.
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(2)]
    try:
        for hog in hogs:
            os.sched_setaffinity(hog.pid, {cpu})
        # 1.5 s of computation given a third of a processor: about 4.5 s on the wall, within a 2.5 s limit.
        started = time.monotonic()
        proc, watchdog, clock = watched(COMPUTE.format(seconds=1.5), limit=2.5, cpu=cpu)
        assert proc.wait(30) == 0
        assert time.monotonic() - started > 2.5 and not clock.expired and clock.seconds < 2.5
        watchdog.stop()
        # Computing without end: interrupted (KeyboardInterrupt ends it) once it computed its limit.
        proc, watchdog, clock = watched(COMPUTE.format(seconds=1000), limit=1.5, cpu=cpu)
        assert proc.wait(30) != 0 and clock.expired and watchdog.breach is None
        assert 1.5 < clock.seconds < 2.5
        watchdog.stop()
    finally:
        for hog in hogs:
            hog.kill()


def test_a_sleeping_cell_is_interrupted_on_the_wall_clock_and_one_ignoring_the_interrupt_killed(monkeypatch):
    started = time.monotonic()
    proc, watchdog, clock = watched("import time\ntime.sleep(60)", limit=1)
    assert proc.wait(30) != 0 and clock.expired and time.monotonic() - started < 10
    watchdog.stop()
    monkeypatch.setattr(watching, "INTERRUPT_GRACE", 1.0)
    stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    proc, watchdog, clock = watched(stubborn, limit=1)
    assert proc.wait(30) == -9 and clock.expired and watchdog.breach is None
    watchdog.join(5)
    assert not watchdog.is_alive()


THREAD_FORKS = """
import subprocess, sys, threading, time
kids = []
threading.Thread(target=lambda: kids.append(subprocess.Popen(["sleep", "30"]))).start()  # a thread's child
kids.append(subprocess.Popen(["sh", "-c", "sleep 30 & wait"]))                              # and a grandchild
time.sleep(0.5)
print("ready", flush=True)
time.sleep(30)
"""


def unreadable_children_files(path, *args, **kwargs):
    if str(path).endswith("/children"):
        raise PermissionError(path)
    return open(path, *args, **kwargs)


@pytest.mark.parametrize("children_files", ["readable", "unreadable"])
def test_watchdog_sees_the_children_of_every_thread_and_their_children(children_files, monkeypatch):
    if children_files == "unreadable":      # a kernel without CONFIG_PROC_CHILDREN: psutil's way
        patch_all(monkeypatch, "open", unreadable_children_files)
    proc = subprocess.Popen([sys.executable, "-c", THREAD_FORKS], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        root = psutil.Process(proc.pid)
        listed = sorted(p.pid for p in watching.descendants(root))
        assert listed == sorted(p.pid for p in root.children(recursive=True)) and len(listed) == 3
        watchdog = Watchdog(proc.pid, replace(Limits(), max_processes=3))       # the tree has 4
        watchdog.start()
        watchdog.join(10)
        assert watchdog.breach is not None and watchdog.breach.kind == "processes"
    finally:
        proc.kill()
        proc.wait()


# --- Command builders: what kernel_prefix puts before the kernel's command line ---------------------------

UNSHARE, PRLIMIT, BWRAP = "/opt/tools/unshare", "/opt/tools/prlimit", "/opt/tools/bwrap"
ALL_FEATURES = frozenset({"--size", "--perms", "--disable-userns"})
SEP = "\x1f"       # the stubs below print each argument followed by this separator


class Host:
    """The tools and namespaces kernel_prefix finds, as a test chooses them."""

    def __init__(self, monkeypatch, setpriv="/opt/tools/setpriv"):
        self.tools = {"unshare": UNSHARE, "prlimit": PRLIMIT, "setpriv": setpriv, "bwrap": BWRAP}
        self.namespaces = {"--net", "--mount"}
        self.features = set(ALL_FEATURES)     # the options this bubblewrap knows
        patch_all(monkeypatch, "shutil", SimpleNamespace(which=self.tools.get))
        patch_all(monkeypatch, "namespaces_available", lambda *flags: set(flags) <= self.namespaces)
        patch_all(monkeypatch, "bwrap_features", lambda: frozenset(self.features))


@pytest.fixture
def host(monkeypatch):
    return Host(monkeypatch)


def no_net(**limits) -> Limits:
    return replace(Limits(), isolate_network=False, **limits)


def limit_words(limits: Limits, nproc: int | None = None) -> list[str]:
    cpu = int(limits.submission_timeout * max(1, limits.threads) * 2)
    return [PRLIMIT, f"--fsize={limits.max_file_mb * 2**20}", f"--cpu={cpu}", "--core=0",
            f"--nproc={limits.max_processes if nproc is None else nproc}", "--"]


def test_prlimit_words_come_from_the_file_cpu_and_process_limits(host):
    """File size in bytes, CPU = 2 x timeout x threads (truncated), no core, nproc; memory is watched, not set."""
    limits = no_net(submission_timeout=100.6, threads=3, max_file_mb=5, max_processes=7, memory_mb=123)
    assert kernel_prefix(limits) == [PRLIMIT, "--fsize=5242880", "--cpu=603", "--core=0", "--nproc=7", "--"]
    assert kernel_prefix(replace(limits, threads=0))[2] == "--cpu=201"     # at least one thread's worth


def test_command_line_limits_replace_only_what_was_given_and_must_be_positive():
    from autograder.cli.main import build_parser, limit_overrides

    overrides = limit_overrides(build_parser().parse_args(["grade", "in", "--out", "out", "--memory-mb", "2048"]))
    assert overrides.apply(Limits(cell_timeout=45)) == Limits(cell_timeout=45, memory_mb=2048)
    for bad in ("0", "-1"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["grade", "in", "--out", "out", "--memory-mb", bad])


def test_without_prlimit_on_the_host_no_limit_words(host):
    """prlimit missing: nothing but the namespace words."""
    del host.tools["prlimit"]
    assert kernel_prefix(no_net()) == []
    assert kernel_prefix(Limits()) == [UNSHARE, "--net", "--"]


@pytest.mark.parametrize("isolate, available, words", [
    (True, True, [UNSHARE, "--net", "--"]),
    (True, False, []),
    (False, True, []),
])
def test_network_namespace_only_when_asked_and_available(host, isolate, available, words):
    """`unshare --net` only when the limits ask for it and the host allows it."""
    if not available:
        host.namespaces.discard("--net")
    limits = replace(Limits(), isolate_network=isolate)
    assert kernel_prefix(limits) == words + limit_words(limits)
    assert confinement.network_isolation() is available


def test_no_mount_namespace_without_something_to_hide(host, tmp_path):
    """No view, filesystem isolation off, or nothing left to hide after usable(): no --mount, no script."""
    kept = FileView(hide=(str(tmp_path),), read_only=(), writable=(str(tmp_path),))
    limits = no_net()
    assert kernel_prefix(limits, None) == limit_words(limits)
    assert kernel_prefix(replace(limits, isolate_filesystem=False), kept) == limit_words(limits)
    gone = FileView(hide=(str(tmp_path / "absent"), "/"), read_only=(), writable=())
    assert kernel_prefix(limits, gone) == limit_words(limits)
    host.namespaces.discard("--mount")
    assert kernel_prefix(Limits(), kept) == [UNSHARE, "--net", "--"] + limit_words(limits)
    with pytest.raises(ValueError, match="mount namespace"):
        kernel_prefix(limits, kept, KernelUser(5, 6))


def tree(tmp_path: Path, hidden: str = "hidden") -> dict[str, str]:
    """A hidden tree holding a read-only directory and file and a writable directory, and one kept outside."""
    tmp_path = tmp_path.resolve()      # the script names real paths
    h = tmp_path / hidden
    (h / "venv").mkdir(parents=True)
    (h / "data").mkdir()
    (h / "data" / "mnist.npz").write_bytes(b"npz")
    (h / "work").mkdir()
    (tmp_path / "outside").mkdir()
    return {"hide": str(h), "ro_dir": str(h / "venv"), "ro_file": str(h / "data" / "mnist.npz"),
            "rw": str(h / "work"), "outside": str(tmp_path / "outside")}


def test_mount_script_stages_hides_and_binds_back_in_order(host, tmp_path):
    """Kept paths are staged under /mnt before the tmpfs hides them, then bound back outermost first (ro remounted)."""
    p = tree(tmp_path)
    view = FileView(hide=(p["hide"],), read_only=(p["ro_dir"], p["ro_file"]), writable=(p["rw"], p["outside"]))
    limits = Limits()
    prefix = kernel_prefix(limits, view)
    assert prefix[:7] == [UNSHARE, "--net", "--mount", "--", "/bin/sh", "-c", prefix[6]]
    assert prefix[7:] == ["sandbox"] + limit_words(limits)
    assert prefix[6].splitlines() == [
        "set -e",
        "mount --make-rprivate /",
        "mount -t tmpfs -o size=64k,mode=700 tmpfs /mnt",
        "mkdir -p /mnt/0", f"mount --bind {p['ro_dir']} /mnt/0",
        "touch /mnt/1", f"mount --bind {p['ro_file']} /mnt/1",
        "mkdir -p /mnt/2", f"mount --bind {p['rw']} /mnt/2",
        "mkdir -p /mnt/3", f"mount --bind {p['outside']} /mnt/3",
        f"mount -t tmpfs -o size=16m,mode=755 tmpfs {p['hide']}",
        f"mkdir -p {p['ro_dir']}", f"mount --bind /mnt/0 {p['ro_dir']}", f"mount -o remount,bind,ro {p['ro_dir']}",
        f"mkdir -p {p['rw']}", f"mount --bind /mnt/2 {p['rw']}",       # writable: no remount; outside: not hidden
        f"mkdir -p {p['hide']}/data && touch {p['ro_file']}", f"mount --bind /mnt/1 {p['ro_file']}",   # deeper: later
        f"mount -o remount,bind,ro {p['ro_file']}",
        'exec "$@"',
    ]


def test_kernel_user_hides_home_keeps_the_interpreter_chowns_its_dirs_and_drops_privileges(host, tmp_path, monkeypatch):
    """With a KernelUser: ~ hidden, the base interpreter kept read-only, writable dirs chowned, setpriv last."""
    home = tmp_path.resolve() / "home"
    (home / "python").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    patch_all(monkeypatch, "sys_base", lambda: str(home / "python"))
    p = tree(tmp_path)
    limits = replace(Limits(), max_processes=5)
    prefix = kernel_prefix(limits, FileView((p["hide"],), (p["ro_dir"],), (p["rw"],)), KernelUser(2_000_123, 2_000_124))
    assert prefix[:4] == [UNSHARE, "--net", "--mount", "--"]
    assert prefix[7:] == ["sandbox"] + limit_words(limits, nproc=5 * 16)     # RLIMIT_NPROC counts threads
    py = f"{home}/python"
    assert prefix[6].splitlines() == [
        "set -e",
        "mount --make-rprivate /",
        "mount -t tmpfs -o size=64k,mode=700 tmpfs /mnt",
        "mkdir -p /mnt/0", f"mount --bind {p['ro_dir']} /mnt/0",
        "mkdir -p /mnt/1", f"mount --bind {py} /mnt/1",
        "mkdir -p /mnt/2", f"mount --bind {p['rw']} /mnt/2",
        f"mount -t tmpfs -o size=16m,mode=755 tmpfs {p['hide']}",
        f"mount -t tmpfs -o size=16m,mode=755 tmpfs {home}",
        f"mkdir -p {p['ro_dir']}", f"mount --bind /mnt/0 {p['ro_dir']}", f"mount -o remount,bind,ro {p['ro_dir']}",
        f"mkdir -p {py}", f"mount --bind /mnt/1 {py}", f"mount -o remount,bind,ro {py}",
        f"mkdir -p {p['rw']}", f"mount --bind /mnt/2 {p['rw']}",
        f"chown -R 2000123:2000124 {p['rw']}",
        'exec /opt/tools/setpriv --reuid=2000123 --regid=2000124 --clear-groups --no-new-privs -- "$@"',
    ]


ODD = "it's a \"dir\" $(touch pwned); `id` *"      # a space, both quotes, substitutions, a glob
STUBS = "".join(f"{name}() {{ printf '%s\\037' {name} \"$@\"; echo; }}\n" for name in ("mount", "mkdir", "touch", "chown"))


def run_script(script: str, *argv: str) -> list[list[str]]:
    """Run the mount script under /bin/sh with mount, mkdir, touch and chown recorded, not run: the argv each got."""
    proc = subprocess.run(["/bin/sh", "-c", STUBS + script, "sandbox", *argv], capture_output=True, text=True,
                           timeout=10)
    assert proc.returncode == 0, proc.stderr
    return [line.split(SEP)[:-1] for line in proc.stdout.splitlines()]


def test_odd_paths_reach_mount_mkdir_chown_and_setpriv_intact(monkeypatch, tmp_path):
    """Quoted paths: bash -n accepts the script and every command receives each path as one exact argument."""
    setpriv = tmp_path / "bin" / "setpriv"
    setpriv.parent.mkdir()
    setpriv.write_text("#!/bin/sh\nprintf '%s\\037' setpriv \"$@\"; echo\n")
    setpriv.chmod(0o755)
    Host(monkeypatch, setpriv=str(setpriv))
    base = tmp_path.resolve() / ODD
    p = tree(base, hidden=f"hid den {ODD}")
    home, py = base / "ho me'", base / "ho me'" / "py thon"
    py.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    patch_all(monkeypatch, "sys_base", lambda: str(py))
    view = FileView(hide=(p["hide"],), read_only=(p["ro_dir"], p["ro_file"]), writable=(p["rw"],))
    script = kernel_prefix(no_net(), view, KernelUser(7, 8))[5]
    assert subprocess.run(["bash", "-n", "-c", script], capture_output=True).returncode == 0
    assert all(shlex.split(line) for line in script.splitlines())
    ro_dir, ro_file, rw, py = p["ro_dir"], p["ro_file"], p["rw"], str(py)
    assert run_script(script, "kernel", "a b") == [
        ["mount", "--make-rprivate", "/"],
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=700", "tmpfs", "/mnt"],
        ["mkdir", "-p", "/mnt/0"], ["mount", "--bind", ro_dir, "/mnt/0"],
        ["touch", "/mnt/1"], ["mount", "--bind", ro_file, "/mnt/1"],
        ["mkdir", "-p", "/mnt/2"], ["mount", "--bind", py, "/mnt/2"],
        ["mkdir", "-p", "/mnt/3"], ["mount", "--bind", rw, "/mnt/3"],
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=755", "tmpfs", p["hide"]],
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=755", "tmpfs", str(home)],
        ["mkdir", "-p", ro_dir], ["mount", "--bind", "/mnt/0", ro_dir], ["mount", "-o", "remount,bind,ro", ro_dir],
        ["mkdir", "-p", py], ["mount", "--bind", "/mnt/2", py], ["mount", "-o", "remount,bind,ro", py],
        ["mkdir", "-p", rw], ["mount", "--bind", "/mnt/3", rw],
        ["mkdir", "-p", str(Path(ro_file).parent)], ["touch", ro_file],                 # deepest last
        ["mount", "--bind", "/mnt/1", ro_file], ["mount", "-o", "remount,bind,ro", ro_file],
        ["chown", "-R", "7:8", rw],
        ["setpriv", "--reuid=7", "--regid=8", "--clear-groups", "--no-new-privs", "--", "kernel", "a b"],
    ]
    assert not list(tmp_path.rglob("pwned"))


def test_usable_keeps_existing_real_paths_and_drops_hides_that_would_break_the_kernel(monkeypatch, tmp_path):
    """Missing paths go; symlinks resolve; no /, no ancestor of the staging area, of the interpreter unless kept,
    nor a tree inside another hidden one."""
    t = tmp_path.resolve()
    for d in ("a/inner", "b", "stage/mnt", "py/lib", "ro"):
        (t / d).mkdir(parents=True)
    (t / "link").symlink_to(t / "b")
    patch_all(monkeypatch, "STAGING", str(t / "stage" / "mnt"))
    patch_all(monkeypatch, "sys_base", lambda: str(t / "py" / "lib"))
    hide = ("/", str(t / "a"), str(t / "a" / "inner"), str(t / "link"), str(t / "b"), str(t / "stage"),
            str(t / "py"), str(t / "missing"))
    view = FileView(hide, read_only=(str(t / "ro"), str(t / "nope")), writable=(str(t / "link"), str(t / "gone")))
    assert view.usable() == FileView((str(t / "a"), str(t / "b")), (str(t / "ro"),), (str(t / "b"),))
    kept = replace(view, read_only=view.read_only + (str(t / "py" / "lib"),))
    assert kept.usable().hide == (str(t / "a"), str(t / "b"), str(t / "py"))


@pytest.mark.parametrize("mechanism", list(Mechanism))
def test_a_uid_of_its_own_only_as_root_when_files_are_hidden(mechanism):
    """Root mechanisms give the kernel base + grader pid (gid alike), unless kernel_user or isolate_filesystem is off."""
    me = confinement.KERNEL_UID_BASE + os.getpid()
    own = mechanism in (Mechanism.BWRAP_ROOT, Mechanism.UNSHARE_ROOT)
    assert SandboxPolicy(Limits(), mechanism).user == (KernelUser(me, me) if own else None)
    assert SandboxPolicy(replace(Limits(), kernel_user=False), mechanism).user is None
    assert SandboxPolicy(replace(Limits(), isolate_filesystem=False), mechanism).user is None


@pytest.fixture
def probe(monkeypatch):
    """namespaces_available with a fresh cache and a recorded `unshare` run."""
    calls = []
    state = SimpleNamespace(calls=calls, result=lambda: SimpleNamespace(returncode=0), unshare=UNSHARE)

    def run(argv, **kwargs):
        calls.append((argv, kwargs))
        return state.result()

    patch_all(monkeypatch, "shutil", SimpleNamespace(which=lambda name: state.unshare))
    patch_all(monkeypatch, "subprocess", SimpleNamespace(run=run, TimeoutExpired=subprocess.TimeoutExpired))
    namespaces_available.cache_clear()
    yield state
    namespaces_available.cache_clear()


def test_namespaces_probe_runs_unshare_once_per_flag_set(probe):
    """`unshare FLAGS -- true` with a timeout, answered from the cache afterwards."""
    assert namespaces_available("--net") is True
    assert namespaces_available("--net") is True
    assert probe.calls == [([UNSHARE, "--net", "--", "true"], {"capture_output": True, "timeout": 10})]


@pytest.mark.parametrize("failure", ["exit 1", "OSError", "timeout", "no unshare"])
def test_namespaces_probe_says_no_when_unshare_fails(probe, failure):
    """A failing, raising, hanging or missing unshare means no namespace."""
    def result():
        if failure == "OSError":
            raise OSError("denied")
        if failure == "timeout":
            raise subprocess.TimeoutExpired("unshare", 10)
        return SimpleNamespace(returncode=1)

    probe.result = result
    if failure == "no unshare":
        probe.unshare = None
    assert namespaces_available("--mount") is False
    assert len(probe.calls) == (0 if failure == "no unshare" else 1)


# --- bubblewrap: the same view, for root and for an ordinary user --------------------------------------------

BWRAP_HEAD = [BWRAP, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
              "--setenv", "JPY_PARENT_PID", "1"]
ROOT_FS = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]


def test_bwrap_as_root_hides_binds_back_outermost_first_then_drops_to_the_kernel_uid(host, tmp_path):
    """Hidden trees are bounded tmpfs, kept paths bound at their own path (missing parents made 0755 so the kernel's
    uid can pass), hidden tmpfs remounted read-only; its directories chowned outside, setpriv inside."""
    p = tree(tmp_path)
    view = FileView((p["hide"],), (p["ro_dir"], p["ro_file"]), (p["rw"], p["outside"]))
    limits = replace(Limits(), max_processes=5)
    prefix = bwrap_prefix(limits, view, KernelUser(7, 8), userns=False)
    chown = f"chown -R 7:8 -- {p['rw']} {p['outside']}; "
    assert prefix[:4] == ["/bin/sh", "-c", f'set -e; trap "" INT; {chown}exec "$@"', "sandbox"]
    assert prefix[4:] == BWRAP_HEAD + ["--unshare-net"] + ROOT_FS + [
        "--size", str(64 * 2**20), "--perms", "1777", "--tmpfs", "/dev/shm",
        "--size", str(16 * 2**20), "--tmpfs", p["hide"],
        "--bind", p["outside"], p["outside"],                                   # same depth as the hidden tree
        "--ro-bind", p["ro_dir"], p["ro_dir"],
        "--bind", p["rw"], p["rw"],
        "--perms", "0755", "--dir", str(Path(p["ro_file"]).parent),             # deeper: later, its parent first
        "--ro-bind", p["ro_file"], p["ro_file"],
        "--remount-ro", p["hide"],
        "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP",
        "--", "/opt/tools/setpriv", "--reuid=7", "--regid=8", "--clear-groups", "--inh-caps=-all",
        "--bounding-set=-all", "--no-new-privs",
        "--"] + limit_words(limits, nproc=5 * 16)


def test_bwrap_in_a_user_namespace_keeps_the_uid_and_leaves_out_what_an_old_bubblewrap_lacks(host, tmp_path):
    """--unshare-user, no chown, no setpriv; without --size, --perms or --disable-userns they are left out."""
    host.features.clear()
    p = tree(tmp_path)
    view = FileView((p["hide"],), (p["ro_file"],), (p["rw"],))
    prefix = bwrap_prefix(Limits(), view, None, userns=True)
    assert prefix == ["/bin/sh", "-c", 'set -e; trap "" INT; exec "$@"', "sandbox"] + BWRAP_HEAD + [
        "--unshare-net", "--unshare-user"] + ROOT_FS + [
        "--tmpfs", "/dev/shm", "--tmpfs", p["hide"], "--bind", p["rw"], p["rw"],
        "--dir", str(Path(p["ro_file"]).parent), "--ro-bind", p["ro_file"], p["ro_file"],
        "--remount-ro", p["hide"], "--"] + limit_words(Limits(), nproc=Limits().max_processes * 16)
    host.features.add("--disable-userns")
    assert bwrap_prefix(Limits(), view, None, userns=True)[13:15] == ["--unshare-user", "--disable-userns"]


def test_bwrap_without_a_view_or_network_isolation(host):
    """No view: the filesystem as the grader sees it (writable), still a private /dev, /proc and /dev/shm."""
    prefix = bwrap_prefix(no_net(), None, None, userns=False)
    assert prefix[4:] == BWRAP_HEAD + ["--bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--size",
                                       str(64 * 2**20), "--perms", "1777", "--tmpfs", "/dev/shm", "--"] + \
        limit_words(no_net(), nproc=Limits().max_processes * 16)


def test_a_hidden_tree_that_is_also_kept_is_never_remounted_read_only(host, tmp_path):
    """The bind over it would be the mount remounted: a writable kept path equal to a hidden one stays writable."""
    d = str(tmp_path.resolve())
    words = bwrap_prefix(no_net(), FileView((d,), (), (d,)), None, userns=True)
    assert "--remount-ro" not in words
    assert words[words.index(d) - 1:][:4] == ["--tmpfs", d, "--bind", d]


def test_the_policy_view_also_hides_home_and_var_tmp_and_keeps_the_interpreter(host, tmp_path, monkeypatch):
    t = tmp_path.resolve()
    for d in ("home/py", "project/venv"):
        (t / d).mkdir(parents=True)
    patch_all(monkeypatch, "home_dirs", lambda: (str(t / "home"),))
    patch_all(monkeypatch, "sys_base", lambda: str(t / "home" / "py"))
    view = FileView((str(t / "project"),), (str(t / "project" / "venv"),), ())
    kernel = SandboxPolicy(Limits(), Mechanism.BWRAP_USERNS).kernel_view(view)
    assert kernel.hide[0] == str(t / "project") and str(t / "home") in kernel.hide
    assert ("/var/tmp" in kernel.hide) == os.path.isdir("/var/tmp")
    assert kernel.read_only == (str(t / "project" / "venv"), str(t / "home" / "py"))
    assert SandboxPolicy(replace(Limits(), isolate_filesystem=False), Mechanism.BWRAP_USERNS).kernel_view(view) is None


# --- The policy: what each mechanism gives, and says --------------------------------------------------------

@pytest.mark.parametrize("mechanism, network, files, pid, own_uid", [
    (Mechanism.BWRAP_ROOT, True, True, True, True),
    (Mechanism.UNSHARE_ROOT, True, True, False, True),
    (Mechanism.BWRAP_USERNS, True, True, True, False),
    (Mechanism.LIMITS_ONLY, False, False, False, False),
])
def test_each_mechanism_says_what_held(host, mechanism, network, files, pid, own_uid):
    isolation = SandboxPolicy(Limits(), mechanism).isolation()
    assert isolation == {"mechanism": str(mechanism), "network_cut": network, "files_hidden": files,
                         "pid_namespace": pid, "own_uid": own_uid, "reduced": not (network and files)}
    text = describe_isolation(isolation)
    assert text.startswith("Sandbox: ") and ("Isolation is reduced" in text) == isolation["reduced"]
    # Asked for less in grading.toml: reported as it held, so reduced.
    less = SandboxPolicy(replace(Limits(), isolate_network=False), mechanism).isolation()
    assert less["network_cut"] is False and less["reduced"] is True


def test_reduced_isolation_says_why_and_what_the_kernel_can_reach(host):
    policy = SandboxPolicy(Limits(), Mechanism.LIMITS_ONLY, reason="bwrap-userns: user namespaces are disabled")
    assert policy.isolation()["reason"] == "bwrap-userns: user namespaces are disabled"
    assert policy.summary() == (
        "Sandbox: no namespace. Isolation is reduced (bwrap-userns: user namespaces are disabled): the kernel can "
        "reach the network and every file the grader's user can read; limits, watchdog, timeouts and clean "
        "scoring still hold. Run `autograder doctor` for details.")


def test_without_namespaces_the_limits_leave_the_task_count_out(host):
    """The kernel shares the grader's uid, whose task count is not its own: no RLIMIT_NPROC (the watchdog counts)."""
    assert SandboxPolicy(Limits(), Mechanism.LIMITS_ONLY).prefix(FileView(("/tmp",), (), ())) == \
        limit_words(Limits())[:-2] + ["--"]


def test_the_unshare_mechanism_is_todays_prefix(host, tmp_path):
    p = tree(tmp_path)
    view = FileView((p["hide"],), (p["ro_dir"],), (p["rw"],))
    policy = SandboxPolicy(Limits(), Mechanism.UNSHARE_ROOT)
    assert policy.prefix(view, KernelUser(7, 8)) == kernel_prefix(Limits(), view, KernelUser(7, 8))


def test_the_interpreter_path_has_its_directories_resolved_and_its_name_kept(monkeypatch, tmp_path):
    """A venv reached through a symlinked folder: the real folder, but the venv's own `python` entry (a symlink
    to the base interpreter, which would lose the venv if resolved)."""
    real = tmp_path.resolve() / "elsewhere" / "venv" / "bin"
    real.mkdir(parents=True)
    (real / "python").symlink_to("/usr/bin/python3")
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / ".venv").symlink_to(real.parent)
    monkeypatch.setattr(sandbox.sys, "executable", str(tmp_path / "project" / ".venv" / "bin" / "python"))
    assert kernel_interpreter() == str(real / "python")


# --- The commands for real, in namespaces of their own ------------------------------------------------------

def available(mechanism: Mechanism) -> bool:
    """Whether this machine runs the mechanism (the root ones need root; a user namespace also works as root)."""
    root_only = mechanism in (Mechanism.BWRAP_ROOT, Mechanism.UNSHARE_ROOT)
    return (os.geteuid() == 0 or not root_only) and SandboxPolicy(no_net(), mechanism).probe() is None


REAL = [pytest.param(m, marks=pytest.mark.skipif(not available(m), reason=f"{m} does not run here"))
        for m in (Mechanism.UNSHARE_ROOT, Mechanism.BWRAP_ROOT, Mechanism.BWRAP_USERNS)]
BWRAP_REAL = REAL[1:]
PROBE = ('for f in "$@"; do if [ -e "$f" ]; then printf "seen %s\\n" "${f##*/}"; fi; done; '
         'cat "$KEEP_RO"; (echo x >> "$KEEP_RO") 2>/dev/null && echo ro-writable; '
         'echo x > "$KEEP_RW/new" && echo rw-ok')


def in_namespace(mechanism: Mechanism, view: FileView, ro_file: str, rw_dir: str, *probe: str,
                 script: str = PROBE) -> str:
    """What a command sees when run behind the mechanism's prefix (no network flag, the real tools)."""
    env = dict(os.environ, KEEP_RO=ro_file, KEEP_RW=rw_dir)
    proc = subprocess.run(SandboxPolicy(no_net(), mechanism).prefix(view) + ["/bin/sh", "-c", script, "probe", *probe],
                          capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("mechanism", REAL)
def test_hidden_trees_are_empty_kept_paths_are_back_read_only_or_writable(tmp_path, mechanism):
    """Odd names included: the hidden file is gone, the read-only file reads but refuses writes, work is writable."""
    p = tree(tmp_path.resolve() / ODD, hidden=f"hid den {ODD}")
    (Path(p["hide"]) / "secret.txt").write_text("s")
    view = FileView((p["hide"],), (p["ro_dir"], p["ro_file"]), (p["rw"],))
    seen = in_namespace(mechanism, view, p["ro_file"], p["rw"], f"{p['hide']}/secret.txt", p["ro_dir"])
    assert seen == "seen venv\nnpzrw-ok\n"
    assert (Path(p["rw"]) / "new").read_text() == "x\n" and Path(p["ro_file"]).read_text() == "npz"


@pytest.mark.parametrize("mechanism", REAL)
def test_a_hidden_tree_inside_a_kept_path_stays_hidden(tmp_path, mechanism):
    p = tree(tmp_path.resolve())
    secret = Path(p["ro_dir"]) / "private"
    secret.mkdir()
    (secret / "key").write_text("k")
    view = FileView((p["hide"], str(secret)), (p["ro_dir"], p["ro_file"]), (p["rw"],))
    assert in_namespace(mechanism, view, p["ro_file"], p["rw"], str(secret / "key")) == "npzrw-ok\n"


@pytest.mark.parametrize("mechanism", REAL)
def test_a_read_only_path_inside_a_writable_one_stays_read_only(tmp_path, mechanism):
    p = tree(tmp_path.resolve())
    data = Path(p["rw"]) / "data.npz"
    data.write_text("d")
    view = FileView((p["hide"],), (str(data),), (p["rw"],))
    assert in_namespace(mechanism, view, str(data), p["rw"]) == "drw-ok\n"


BWRAP_PROBE = ('echo "pid $$"; (touch "$1/new") 2>/dev/null || echo hidden-read-only; touch /dev/shm/x && echo shm-ok; '
               'tail -n +3 /proc/net/dev | cut -d: -f1; set -- /proc/[0-9]*; echo "$# processes"')


@pytest.mark.parametrize("mechanism", BWRAP_REAL)
def test_bubblewrap_gives_its_own_pids_shm_and_network(tmp_path, mechanism):
    """The command is pid 2 under bubblewrap's init and sees two processes; /dev/shm is its own (nothing left on
    the host); a hidden tree is read-only; the only network interface is its own loopback."""
    p = tree(tmp_path.resolve())
    view = FileView((p["hide"],), (p["ro_file"],), (p["rw"],))
    before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    words = SandboxPolicy(Limits(), mechanism).prefix(view)
    proc = subprocess.run(words + ["/bin/sh", "-c", BWRAP_PROBE, "probe", p["hide"]], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["pid", "2", "hidden-read-only", "shm-ok", "lo", "2", "processes"]
    # The probe's file never reached the host (other tests' processes may come and go there meanwhile).
    assert "x" in before or not os.path.exists("/dev/shm/x")


def test_kernel_environment_keeps_no_secret_of_the_grader(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_s3cr3t")
    monkeypatch.setenv("LC_ALL", "fr_FR.UTF-8")
    env = SandboxLauncher(Limits(), None).env(tmp_path)
    assert "s3cr3t" not in " ".join(env.values()) and "GITHUB_TOKEN" not in env
    assert env["PATH"] == os.environ["PATH"] and env["LC_ALL"] == "fr_FR.UTF-8"
    assert env["HOME"] == str(tmp_path) and env["OMP_NUM_THREADS"] == str(Limits().threads)
