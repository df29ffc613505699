"""Installing: the interpreters make accepts, the universal lock on every supported Python and platform, and
what the student's verifier.py says on an unsupported one.  The lock checks ask PyPI (uv, no install)."""

import glob
import hashlib
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

from autograder.core.versions import python_bounds, supported_versions
from tests.conftest import ROOT

ENSURE_VENV = ROOT / "tools" / "ensure-venv"
CHECK = ROOT / "tools" / "python-ok.py"
UV = Path(sys.executable).parent / "uv"
LOWEST, HIGHEST = python_bounds(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
# The oldest patch release of the lowest minor (what the lock resolves for), then each supported minor.
VERSIONS = [f"{LOWEST[0]}.{LOWEST[1]}.0"] + [f"{LOWEST[0]}.{m}" for m in range(LOWEST[1] + 1, HIGHEST[1] + 1)]
PLATFORMS = ["x86_64-manylinux_2_28", "aarch64-manylinux_2_28", "aarch64-apple-darwin", "x86_64-pc-windows-msvc"]


def resolve(version: str, platform: str, offline: bool) -> subprocess.CompletedProcess:
    """uv's resolution of the pinned requirements for that Python and platform, wheels only, nothing installed."""
    return subprocess.run([str(UV), "pip", "compile", str(ROOT / "requirements.txt"), "--no-deps", "--only-binary",
                           ":all:", "--python-version", version, "--python-platform", platform, "--quiet",
                           "-o", "/dev/null"] + ["--offline"] * offline, capture_output=True, text=True, timeout=300)


def test_the_interpreter_check_admits_what_requires_python_admits():
    source = CHECK.read_text()
    assert f"LOWEST, HIGHEST = {LOWEST}, {HIGHEST}" in source
    assert f"--python-version {VERSIONS[0]}" in (ROOT / "Makefile").read_text()
    assert supported_versions().python == (LOWEST, HIGHEST)


ABOVE = f"{HIGHEST[0]}.{HIGHEST[1] + 1}"


@pytest.fixture(scope="module")
def resolutions():
    """The first resolution asks PyPI for every pinned package's files (all platforms and Pythons at once);
    the others read those answers from uv's cache."""
    first, *others = [(v, p) for v in VERSIONS for p in PLATFORMS] + [(ABOVE, PLATFORMS[0])]
    return {first: resolve(*first, offline=False)} | {target: resolve(*target, offline=True) for target in others}


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("version", VERSIONS)
def test_the_lock_installs_on_every_supported_python_and_platform(resolutions, version, platform):
    proc = resolutions[version, platform]
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_first_python_above_the_range_has_no_tensorflow_wheels(resolutions):
    """requires-python is as wide as the pinned TensorFlow allows: widen it when the next Python resolves."""
    proc = resolutions[ABOVE, PLATFORMS[0]]
    assert proc.returncode != 0 and "has no" in proc.stderr and "wheels" in proc.stderr, proc.stderr[-2000:]


def test_the_lock_is_what_make_lock_makes_of_pyproject(tmp_path):
    """Nobody edited a pin by hand, and pyproject.toml's dependencies are all locked."""
    lock = tmp_path / "requirements.txt"
    shutil.copy(ROOT / "requirements.txt", lock)   # uv keeps the pins it finds there where they still fit
    command = re.search(r"^lock:.*\n\t(.*\n(?:\t\t.*\n)*)", (ROOT / "Makefile").read_text(), re.M).group(1)
    args = command.replace("\\\n", " ").replace("$(VENV)/bin/uv", str(UV)).replace("requirements.txt", str(lock))
    proc = subprocess.run(args, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = lambda text: [line for line in text.splitlines() if not line.startswith("#")]  # noqa: E731
    assert body(lock.read_text()) == body((ROOT / "requirements.txt").read_text())


@cache
def unsupported_interpreter() -> str | None:
    """A real CPython outside the range on this machine (pyenv's older versions on the project's machines)."""
    candidates = [shutil.which(f"python3.{m}") for m in (HIGHEST[1] + 1, LOWEST[1] - 1, LOWEST[1] - 2)]
    candidates += sorted(glob.glob(str(Path.home() / ".pyenv" / "versions" / "*" / "bin" / "python3")))
    for candidate in filter(None, candidates):
        proc = subprocess.run([candidate, str(CHECK)], capture_output=True, text=True)
        if proc.returncode == 1 and proc.stderr.startswith("rejected: CPython"):
            return candidate
    return None


def ensure_venv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ENSURE_VENV), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("python, says", [
    ("/nonexistent/python3", "error: PYTHON=/nonexistent/python3: no such command"),
    ("false", "error: PYTHON=false did not run"),
])
def test_make_refuses_what_is_not_a_supported_python_before_building(tmp_path, python, says):
    proc = ensure_venv(str(tmp_path / "venv"), python)
    assert proc.returncode == 2 and proc.stderr.startswith(says), proc.stderr
    assert "needs CPython 3.11 (3.11.0 or later), 3.12 or 3.13" in proc.stderr and "PYTHON=" in proc.stderr
    assert not (tmp_path / "venv").exists()


def test_make_refuses_a_real_python_outside_the_range(tmp_path):
    python = unsupported_interpreter()
    if python is None:
        pytest.skip("no CPython outside the supported range on this machine")
    version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True).stdout.strip()
    proc = ensure_venv(str(tmp_path / "venv"), python)
    assert proc.returncode == 2, proc.stderr
    assert f"error: PYTHON={python} is CPython {version}, which is not supported" in proc.stderr
    assert not (tmp_path / "venv").exists()


def test_a_venv_is_rebuilt_for_another_interpreter_and_updated_for_new_pins(tmp_path):
    venv = tmp_path / "venv"
    identity = subprocess.run([sys.executable, str(CHECK)], capture_output=True, text=True, check=True).stdout.strip()
    hashes = "".join(f"{hashlib.sha256((ROOT / n).read_bytes()).hexdigest()}  {n}\n"
                     for n in ("requirements.txt", "pyproject.toml"))

    def plan(stamp: str | None) -> str:
        if stamp is not None:
            (venv / ".installed").write_text(stamp)
        return ensure_venv("--plan", str(venv), sys.executable).stdout.strip()

    assert plan(None) == f"{venv}: build with Python {identity}"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    assert plan(f"python {identity}\n{hashes}") == f"{venv}: up to date with Python {identity}"
    assert plan(f"python {identity}\n{hashes.replace('0', '1', 1)}") == f"{venv}: update with Python {identity}"
    assert plan(f"python 3.11.2 /usr/bin/python3.11\n{hashes}") == f"{venv}: build with Python {identity}"


def load_verifier():
    """student_template/verifier.py as a module: its definitions only, nothing runs."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("verifier_under_test", ROOT / "student_template" / "verifier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verifier_states_what_it_was_supported_versions():
    versions = supported_versions()
    verifier = load_verifier()
    assert verifier.TESTE_AVEC == versions.to_dict()
    assert f"Testé avec Keras {versions.keras} et TensorFlow {versions.tensorflow}" in verifier.__doc__
    assert f"Il faut Python {versions.python_range().replace('-', ' à ')} avec keras" in verifier.__doc__
    assert verifier.versions_non_prises_en_charge(sys.version_info, versions.keras, versions.tensorflow) == ([], [])


@pytest.mark.parametrize("python, keras, says", [
    ((3, 10, 12), "3.15.1", "Votre Python est la version 3.10.12, qui n'est pas prise en charge."),
    ((3, 14, 0), "3.15.1", "Votre Python est la version 3.14.0, qui n'est pas prise en charge."),
    ((3, 12, 3), None, "Il manque keras dans ce Python."),
    ((3, 12, 3), "2.15.0", "Votre Keras (2.15.0) est trop ancien : le TP utilise Keras 3."),
])
def test_verifier_tells_a_student_on_an_unsupported_setup_what_to_do(python, keras, says):
    blocking, notes = load_verifier().versions_non_prises_en_charge(python, keras, supported_versions().tensorflow)
    assert says in blocking and blocking[-1].startswith("Que faire : ") and notes == []


def test_verifier_warns_but_goes_on_with_other_keras_and_tensorflow_versions():
    blocking, notes = load_verifier().versions_non_prises_en_charge((3, 12, 3), "3.10.0", "2.19.0")
    assert blocking == [] and "Vous avez Keras 3.10.0 et TensorFlow 2.19.0" in notes[-1]


def test_verifier_run_by_an_unsupported_python_stops_with_the_french_advice(tmp_path):
    python = unsupported_interpreter()
    if python is None:
        pytest.skip("no CPython outside the supported range on this machine")
    proc = subprocess.run([python, str(ROOT / "student_template" / "verifier.py"), "devoir.ipynb"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "qui n'est pas prise en charge" in proc.stdout and "Que faire : utilisez Google Colab" in proc.stdout
