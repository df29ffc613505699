"""`autograder export otter`: an otter-grader autograder zip built with otter's own `otter generate`.

The zip holds one exception-based test file per question (each test case calls the
rubric's own check function with grading.toml's points and params), the grading plugin's
configuration (the released student notebook, never the master), this package as a
wheel with the pinned requirements, and the verified MNIST copy so grading needs no
download.  `otter run -a autograder.zip NOTEBOOK` runs it without Docker; `otter grade`
and Gradescope run the same zip in their containers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import numpy as np
from otter.generate import main as otter_generate
from otter.utils import chdir

from .codegen import python_template
from .config import PROJECT_ROOT, Config
from .mnist_data import CACHE_FILE, ensure_mnist, from_cache
from .otter_plugin import PLUGIN_NAME

ZIP_NAME = "autograder.zip"
PYTHON_VERSION = "3.11"
GRADESCOPE_SOURCE = "/autograder/source/files"   # where otter's setup installs the zip's files from


def render_tests(config: Config, tests_dir: Path) -> list[Path]:
    template = python_template("otter_test.py.j2")
    tests_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for question in config.questions:
        path = tests_dir / f"{question.id}.py"
        path.write_text(template.render(question=question), encoding="utf-8")
        paths.append(path)
    return paths


def plugin_config(config: Config) -> dict:
    return {
        "template": nbformat.read(config.student, as_version=4),
        "placeholder": config.placeholder,
        "questions": list(config.question_ids),
        "seed": config.limits.seed,
        "threads": config.limits.threads,
    }


def build_wheel(dest: Path) -> Path:
    """This package as a wheel, built offline from the checkout (setuptools is in the venv)."""
    with tempfile.TemporaryDirectory(prefix="autograder-wheel-") as tmp:
        # A copy, so the build leaves no build/ or egg-info behind in the project.
        src = Path(tmp) / "src"
        shutil.copytree(PROJECT_ROOT, src, ignore=shutil.ignore_patterns(
            ".venv", ".git", ".cache", "build", "dist", "*.egg-info", "__pycache__", "tests", "demo-out",
            "assignments", "student_template", "out"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "--wheel-dir", str(dest), str(src)], check=True, capture_output=True)
    return next(dest.glob("*.whl"))


def export_otter(config: Config, out: Path, mnist: Path | None = None) -> Path:
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    target = out / ZIP_NAME
    mnist = Path(mnist) if mnist else ensure_mnist()
    with tempfile.TemporaryDirectory(prefix="autograder-export-") as tmp:
        build = Path(tmp)
        render_tests(config, build / "tests")
        wheel = build_wheel(build)
        # Compressed (otter stores files as they are): a fifth of the cache's size, the same verified arrays.
        np.savez_compressed(build / CACHE_FILE, **from_cache(Path(mnist).parent).arrays())
        requirements = [line for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
                        if line.strip() and not line.lstrip().startswith("#")]
        (build / "requirements.txt").write_text("\n".join([*requirements, f"{GRADESCOPE_SOURCE}/{wheel.name}"]) + "\n")
        (build / "otter_config.json").write_text(json.dumps({
            "lang": "python",
            "plugins": [{PLUGIN_NAME: plugin_config(config)}],
        }, ensure_ascii=False, indent=1), encoding="utf-8")
        partial = build / ZIP_NAME
        with chdir(build):  # otter stores files relative to the working directory
            otter_generate(tests_dir="tests", output_path=str(partial), config="otter_config.json",
                           requirements="requirements.txt", no_environment=True, python_version=PYTHON_VERSION,
                           files=[wheel.name, CACHE_FILE])
        shutil.move(partial, target)
    return target
