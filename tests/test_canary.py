"""The canary before a batch and `autograder doctor`: a real sandboxed kernel, real failures (a few seconds each)."""

import os
import subprocess
import sys

import pytest

from autograder.cli.doctor import kernel_starts
from autograder.core.mnist_data import ensure_mnist
from autograder.runner.canary import SandboxError, canary, check_sandbox
from autograder.runner.confinement import FileView
from autograder.runner.sandbox import Mechanism, SandboxLauncher, SandboxPolicy
from tests.conftest import CONFIG, ROOT

CONFIG_PATH = ROOT / "grading.toml"


def test_the_canary_starts_a_sandboxed_kernel_and_writes_nothing(tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    check_sandbox(CONFIG, CONFIG_PATH, [inbox], out)
    assert not out.exists() and list(inbox.iterdir()) == []


def test_an_interpreter_the_kernel_cannot_reach_fails_at_its_step(tmp_path):
    """The venv hidden and not kept: the namespaces and mounts start, the interpreter does not; named in English."""
    policy = SandboxPolicy.detect(CONFIG.limits)
    venv = os.path.realpath(sys.prefix)
    if not policy.files_hidden or venv == os.path.realpath(sys.base_prefix):
        pytest.skip("needs a sandbox that hides files and a virtual environment")
    work = tmp_path.resolve() / "work"
    work.mkdir()
    mnist = ensure_mnist().resolve()
    launcher = SandboxLauncher(CONFIG.limits, FileView((venv,), (str(mnist),), (str(work),)), policy)
    with pytest.raises(SandboxError) as failed:
        canary(launcher, work=work, mnist=mnist, hidden=CONFIG_PATH)
    assert failed.value.step == "interpreter path"
    message = str(failed.value)
    assert message.startswith("the sandbox could not start a kernel: step 'interpreter path' failed (starting this "
                              "Python interpreter inside the sandbox): ")
    assert "Nothing was graded" in message and "autograder doctor" in message


def test_a_kernel_that_cannot_run_stops_the_batch_before_anything_is_written(tmp_path):
    """A limit no kernel can live with (no task at all: ipykernel cannot start its threads): the canary's kernel dies,
    the CLI exits non-zero naming the step in English, and --out is never created."""
    if SandboxPolicy.detect(CONFIG.limits).mechanism is Mechanism.LIMITS_ONLY:
        pytest.skip("without a uid or user namespace of its own, the kernel's task count is not limited")
    config = tmp_path / "grading.toml"
    config.write_text(CONFIG_PATH.read_text().replace("max_processes = 64 ", "max_processes = 0 "))
    assert "max_processes = 0 " in config.read_text()
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    (inbox / "devoir.ipynb").write_bytes(CONFIG.student.read_bytes())
    proc = subprocess.run([sys.executable, "-m", "autograder", "--config", str(config), "grade", str(inbox),
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert ("error: the sandbox could not start a kernel: step 'kernel' failed (starting a Jupyter kernel in the "
            "sandbox and running one cell): Kernel died before replying to kernel_info") in proc.stderr, proc.stderr
    assert "Nothing was graded and nothing was written to the output folder." in proc.stderr
    assert not out.exists()


def test_doctor_says_what_the_machine_allows_and_which_mechanism_grading_uses():
    proc = subprocess.run([sys.executable, "-m", "autograder", "doctor"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    policy = SandboxPolicy.detect(CONFIG.limits)
    assert [line.split()[0] for line in lines[1:9]] == ["user", "mount", "network", "PID", "uid", "limits",
                                                        "bubblewrap", "network"]
    assert f"Grading will use: {policy.mechanism}." in lines
    assert policy.summary() in lines
    assert kernel_starts(policy) in lines
    assert lines[-1] == "Test kernel: started in the sandbox and ran a cell."
    root = os.geteuid() == 0
    assert lines[0] == "Sandbox capabilities of this machine (grader running as " + (
        "root):" if root else f"uid {os.geteuid()}, an ordinary user):")


def test_doctor_says_whether_grading_can_fork_its_kernels():
    forked = [m for m in Mechanism if kernel_starts(SandboxPolicy(CONFIG.limits, m)).startswith("Kernels: forked")]
    assert forked == [Mechanism.BWRAP_ROOT, Mechanism.BWRAP_USERNS]     # a PID namespace and a file view
    assert "bubblewrap" in kernel_starts(SandboxPolicy(CONFIG.limits, Mechanism.UNSHARE_ROOT))


def test_the_report_says_how_the_kernel_was_isolated_and_reads_it_back():
    from autograder.core.results import GradeReport, Status

    isolation = SandboxPolicy.detect(CONFIG.limits).isolation()
    report = GradeReport("x", Status.OK, (), duration_s=1.0, sandbox=isolation)
    data = report.to_gradescope_dict()
    assert data["extra_data"]["sandbox"] == isolation
    assert GradeReport.from_gradescope_dict(data, CONFIG).sandbox == isolation
