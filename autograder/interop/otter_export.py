"""`autograder export otter`: an otter-grader autograder zip built with otter's own `otter generate`.

The zip holds one exception-based test file per question (each test case calls the
rubric's own check function with grading.toml's points and params), the grading plugin's
configuration (the released student notebook, never the master), the pinned requirements,
this package as a wheel, the verified MNIST copy so grading needs no download, and the
recording of the instructor's slow cells (pipeline/memo.py), replayed where otter grades in
the environment it was recorded in.
`otter run -a autograder.zip NOTEBOOK` runs it without Docker, in this venv; `otter grade`
and Gradescope run the same zip in their containers.

The two containers lay the zip out differently: Gradescope unzips everything before
setup.sh, while otter grade's Dockerfile adds files/ only after setup.sh has built the
environment, and leaves submission_metadata.json empty.  So nothing setup.sh needs lives
in files/: the wheel is installed by run_autograder at grading time, which also gives
otter's runner the JSON object it expects (see templates/otter_grading_steps.sh.j2).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path

import nbformat
import numpy as np
from otter.generate import main as otter_generate
from otter.run import AutograderConfig
from otter.utils import chdir

from ..core.codegen import python_template
from ..core.config import PROJECT_ROOT, Config
from ..core.mnist_data import CACHE_FILE, ensure_mnist, from_cache
from ..core.versions import supported_versions
from ..pipeline.memo import prefix_memo
from ..notebook.memo import memo_key
from .otter_plugin import MEMO_FOLDER, PLUGIN_NAME

ZIP_NAME = "autograder.zip"
PYTHON_VERSION = "3.11"
RUN_AUTOGRADER = "run_autograder"     # the zip's entry point, in otter grade's image and on Gradescope
TESTED_WITH = "tested_with.json"      # in files/: the versions the zip was tested with, for whoever installs it


def render_tests(config: Config, tests_dir: Path) -> list[Path]:
    template = python_template("otter_test.py.j2")
    tests_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for question in config.questions:
        path = tests_dir / f"{question.id}.py"
        path.write_text(template.render(question=question), encoding="utf-8")
        paths.append(path)
    return paths


def plugin_config(config: Config, memo: str | None = None) -> dict:
    return {
        "template": nbformat.read(config.student, as_version=4),
        "memo": memo,
        "placeholder": config.placeholder,
        "questions": list(config.question_ids),
        "seed": config.limits.seed,
        "threads": config.limits.threads,
        # What otter's output tells beside each accuracy check, as results.json does.
        "thresholds": {c.number: float(c.params["threshold"]) for c in config.checks if "threshold" in c.params},
        "feedback": asdict(config.feedback),
        "contamination": asdict(config.contamination),     # the checks search training data as grading does
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


def grading_steps(config: dict, wheel: str) -> str:
    """Shell run before otter's runner starts: install our wheel, make the metadata file valid JSON."""
    root = AutograderConfig(config).autograder_dir
    return python_template("otter_grading_steps.sh.j2").render(
        source=f"{root}/source", wheel=wheel, metadata=f"{root}/submission_metadata.json")


def add_grading_steps(generated: Path, target: Path, steps: str) -> None:
    """Copy otter's zip with ``steps`` put into run_autograder just before it starts run_otter.py.

    Post-processing, because otter generate renders run_autograder from its own template
    with no option for extra steps; every other entry is copied as otter wrote it."""
    with zipfile.ZipFile(generated) as source, zipfile.ZipFile(target, "w") as dest:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == RUN_AUTOGRADER:
                lines = data.decode().splitlines(keepends=True)
                # Exactly one line starts otter's runner (unpacking fails loudly if otter's template changes).
                [start] = [i for i, line in enumerate(lines) if line.rstrip().endswith("/source/run_otter.py")]
                data = "".join([*lines[:start], steps, *lines[start:]]).encode()
            dest.writestr(info, data)


def ship_memo(config: Config, mnist: Path, dest: Path) -> str | None:
    """A copy of this machine's recording of the template's slow cells (made now if it has none), and its key:
    otter's plugin replays it only where the same Python and libraries compute the key again."""
    template = nbformat.read(config.student, as_version=4)
    memo = prefix_memo(config, template, mnist, log=lambda message: print(message, file=sys.stderr))
    if memo is None:
        return None
    shutil.copytree(memo.directory, dest)
    return memo_key(template, config.limits.seed, config.limits.threads)


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
        memo = ship_memo(config, mnist, build / MEMO_FOLDER)
        versions = {**supported_versions().to_dict(), "container_python": PYTHON_VERSION}
        (build / TESTED_WITH).write_text(json.dumps(versions, indent=1) + "\n", encoding="utf-8")
        files = [wheel.name, CACHE_FILE, TESTED_WITH] + ([MEMO_FOLDER] if memo else [])
        otter_config = {"lang": "python", "plugins": [{PLUGIN_NAME: plugin_config(config, memo)}]}
        (build / "otter_config.json").write_text(json.dumps(otter_config, ensure_ascii=False, indent=1),
                                                 encoding="utf-8")
        generated = build / "generated.zip"
        with chdir(build):  # otter stores files relative to the working directory
            otter_generate(tests_dir="tests", output_path=str(generated), config="otter_config.json",
                           requirements=str(PROJECT_ROOT / "requirements.txt"), no_environment=True,
                           python_version=PYTHON_VERSION, files=files)
        add_grading_steps(generated, build / ZIP_NAME, grading_steps(otter_config, wheel.name))
        shutil.move(build / ZIP_NAME, target)
    return target
