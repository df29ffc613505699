"""The otter-grader export: built by otter's own generate, graded like `autograder grade` in both layouts.

`otter run` grades in this venv.  `otter grade` builds an image from otter's own Dockerfile and
runs the zip's run_autograder in a container; without Docker, that container is reproduced:
otter's own build_image prepares the build context, ``ImageLayout`` (standing in for Docker's
build) lays the image's /autograder out by interpreting otter's Dockerfile step by step, and
run_autograder runs in a private mount namespace where that tree is /autograder and this
project's venv, under an overlay that keeps it untouched, plays otter's conda environment
(a stand-in ``mamba`` activates it).
"""

import ast
import copy
import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import dill
import nbformat
import pytest
from otter.generate import OTTER_ENV_NAME
from otter.grade import containers
from otter.run import AutograderConfig
from otter.test_files import create_test_file
from otter.test_files import abstract_test

from autograder.core import messages
from autograder.core.config import Contamination
from autograder.interop import otter_plugin
from autograder.notebook.mapping import map_cells, template_cells
from autograder.core.mnist_data import ensure_mnist, from_cache
from autograder.core.versions import supported_versions
from autograder.core.environment import kernel_env
from autograder.pipeline.keep import STORE, KeptCapture, restore
from autograder.interop.otter_plugin import MEMO_FOLDER, PLUGIN_NAME, AutograderPlugin, unrunnable_questions
from autograder.runner.sandbox import namespaces_available
from tests.conftest import CONFIG, CORPUS, ROOT, secret_solution_lines

OTTER = Path(sys.executable).parent / "otter"
VENV = Path(sys.prefix)
SITE_PACKAGES = Path(sysconfig.get_path("purelib")).relative_to(VENV)
# One rubric defect each in otherwise correct code (see expected.json), plus the two ends.
AGREEMENT = ["solution", "template", "batch_64", "epochs_3", "no_batchnorm", "no_hidden_layer",
             "sigmoid_output", "trained_on_test", "undertrained"]
CONTAINER, OTTER_RUN = "container", "otter-run"
# Every notebook in otter grade's container; otter run differs only in layout, so two suffice there.
RUNS = [(OTTER_RUN, "solution"), *((CONTAINER, name) for name in AGREEMENT), (OTTER_RUN, "template")]
TEMPLATE = nbformat.read(CONFIG.student, as_version=4)
GRADE_OVERRIDES = {"zips": False, "pdf": False, "debug": False}   # what `otter grade` gives build_image by default
CONFIG_PATH = "/autograder/source/otter_config.json"
AUTOGRADER_PATH = re.compile(r"/autograder/[\w./-]+")
CAN_MOUNT = os.geteuid() == 0 and namespaces_available("--mount")
NO_MOUNT = "the container's /autograder needs a private mount namespace (run as root)"


@pytest.fixture(scope="module")
def otter_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "autograder", "export", "otter", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "otter grade" in proc.stderr
    return out / "autograder.zip"


@pytest.fixture(scope="module")
def unpacked(otter_zip, tmp_path_factory):
    where = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(otter_zip) as archive:
        archive.extractall(where)
    return where


def test_zip_is_otters_layout_with_package_requirements_and_mnist(unpacked):
    for name in ("run_autograder", "run_otter.py", "setup.sh", "environment.yml", "otter_config.json"):
        assert (unpacked / name).is_file(), name
    assert sorted(p.name for p in (unpacked / "tests").iterdir()) == [f"{q}.py" for q in CONFIG.question_ids]
    wheel = next((unpacked / "files").glob("keras_mnist_autograder-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        assert {"autograder/rubric/checks.py", "autograder/interop/otter_plugin.py",
                "autograder/kernel/runtime/__init__.py", "autograder/kernel/runtime/format.py"} <= set(archive.namelist())
    from_cache(unpacked / "files")  # raises unless all four arrays match their SHA-256
    env = (unpacked / "environment.yml").read_text()
    assert "python=3.11" in env and "keras==" in env and "files/" not in env
    assert f"/autograder/source/files/{wheel.name}" in (unpacked / "run_autograder").read_text()
    versions = json.loads((unpacked / "files" / "tested_with.json").read_text())
    assert versions == {**supported_versions().to_dict(), "container_python": "3.11"}
    assert versions["keras"] in env and versions["tensorflow"] in env and versions["python_range"] == "3.11-3.13"


def test_test_files_call_the_rubric_functions_with_grading_toml_points_and_params(unpacked, monkeypatch):
    calls = []
    monkeypatch.setattr(otter_plugin, "check", lambda *args: calls.append(args))
    for question in CONFIG.questions:
        test_file = create_test_file(str(unpacked / "tests" / f"{question.id}.py"), None)
        assert test_file.name == question.id
        assert [(tc.name, tc.points, tc.hidden) for tc in test_file.test_cases] == [
            (c.number, c.points, c.visibility == "hidden") for c in question.checks]
        for tc in test_file.test_cases:
            tc.body.call_func({})
    assert calls == [(c.question, c.function, c.params) for c in CONFIG.checks]


def test_otter_config_names_the_plugin_and_carries_no_solution(unpacked):
    config = json.loads((unpacked / "otter_config.json").read_text())
    [plugin] = config["plugins"]
    settings = plugin[PLUGIN_NAME]
    assert nbformat.from_dict(settings["template"]) == TEMPLATE
    assert (settings["seed"], settings["threads"]) == (CONFIG.limits.seed, CONFIG.limits.threads)
    assert settings["contamination"] == asdict(CONFIG.contamination)
    text = "".join(p.read_text(errors="replace") for p in unpacked.rglob("*") if p.is_file() and p.suffix != ".npz")
    assert not [line for line in secret_solution_lines() if line in text]


def test_the_checks_in_otters_kernel_read_grading_tomls_contamination_settings(tmp_path):
    """The runtime's configuration carries them: `check` builds each question's artifacts with them."""
    settings = {"margin": 0.3, "min_rows": 12, "spectrum_margin": 0.2}
    nb = otter_plugin.instrumented_notebook(nbformat.read(CORPUS / "solution.ipynb", as_version=4), TEMPLATE,
                                            questions=CONFIG.question_ids, placeholder=CONFIG.placeholder,
                                            mnist=tmp_path / "mnist.npz", capture_dir=tmp_path / "capture", seed=0,
                                            threads=1, contamination=settings)
    runtime_config = re.search(r"__import__\('json'\)\.loads\((.*)\)\)$", nb.cells[0].source, re.M).group(1)
    assert json.loads(ast.literal_eval(runtime_config))["contamination"] == settings
    calls = []
    fake_runtime = SimpleNamespace(_state={"config": {"capture_dir": str(tmp_path), "mnist": str(ensure_mnist()),
                                                      "contamination": settings}})
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, otter_plugin.RUNTIME_MODULE, fake_runtime)
        patch.setattr(otter_plugin, "load_question", lambda *a, **k: calls.append(k["contamination"]) or "art")
        patch.setattr(otter_plugin.checks, "run_check", lambda *a: None)
        patch.setattr(otter_plugin, "_artifacts", {})
        otter_plugin.check("q1", "trained", {})
    assert calls == [Contamination(**settings)]


def test_student_notebook_tells_otter_where_each_question_ends():
    tagged = [(c.metadata["autograder"]["question"], c.metadata["otter"]["tests"])
              for c in TEMPLATE.cells if "otter" in c.metadata]
    assert tagged == [(q, [q]) for q in CONFIG.question_ids]


def test_unrunnable_questions_get_the_graders_reasons():
    nb = copy.deepcopy(TEMPLATE)
    cells = {c.metadata["autograder"]["question"]: c for c in nb.cells if "autograder" in c.metadata}
    cells["q1"].source = "!pip list\nmodel = None"                       # IPython syntax runs
    cells["q2"].source = "model = keras.Sequential(["                     # a real syntax error
    nb.cells.remove(cells["q3"])
    failed = unrunnable_questions(map_cells(nb, template_cells(TEMPLATE)), CONFIG.question_ids, CONFIG.placeholder)
    assert "q1" not in failed
    assert "erreur de syntaxe" in failed["q2"]
    assert "aucune cellule" in failed["q3"]
    assert "« < Compléter > » est encore présent" in failed["q4"]


def replayed_cells(unpacked: Path, where: Path, monkeypatch, **settings) -> list[str]:
    """The plugin in a submission folder holding the zip's files: which cells it replays from the recording."""
    config = json.loads((unpacked / "otter_config.json").read_text())["plugins"][0][PLUGIN_NAME]
    shutil.copytree(unpacked / "files", where / "submission")
    monkeypatch.chdir(where / "submission")
    for name in kernel_env(config["threads"]):      # the plugin sets the kernel's environment in its process
        monkeypatch.setenv(name, os.environ.get(name, ""))
    plugin = AutograderPlugin(str(where / "submission" / "x.ipynb"), {}, dict(config, **settings))
    nb = plugin.before_execution(nbformat.read(CORPUS / "solution.ipynb", as_version=4))
    plugin.after_grading(None)
    assert not (where / "submission" / MEMO_FOLDER).exists()           # out of the student's reach either way
    return [c.source for c in nb.cells if c.source.startswith("__import__(") and ").memo_restore(" in c.source]


def test_the_zip_replays_the_instructor_cells_only_where_its_key_holds(unpacked, tmp_path, monkeypatch):
    assert (unpacked / "files" / MEMO_FOLDER / "memo.json").is_file()
    replayed = replayed_cells(unpacked, tmp_path / "same", monkeypatch)
    assert [("GaussianNB()" in c, "LinearRegression()" in c) for c in replayed] == [(True, False), (False, True)]
    assert replayed_cells(unpacked, tmp_path / "other", monkeypatch, memo="recorded elsewhere") == []


def _question_scores(tests: list[dict], key: str) -> dict[str, float]:
    scores: dict[str, float] = {}
    for t in tests:
        q = t[key].split(".")[0]
        if q in CONFIG.question_ids:
            scores[q] = scores.get(q, 0.0) + float(t.get("score") or 0)
    return scores


def dockerfile_instructions(text: str) -> list[list[str]]:
    """[instruction, arguments] of each Dockerfile line, continuations joined, comments dropped."""
    lines = re.sub(r"\\\n", " ", text).splitlines()
    return [line.split(None, 1) for line in lines if line.strip() and not line.lstrip().startswith("#")]


class ImageLayout:
    """Stands in for Docker's build: lays out the files of otter grade's image by interpreting, in
    order, the Dockerfile that otter's build_image hands it.  Only steps that touch /autograder
    matter (the others install system packages); an unknown one fails the test."""

    STEPS = {
        "mkdir": lambda path: path.mkdir(parents=True, exist_ok=True),
        "touch": lambda path: path.touch(),                 # an empty file
        "dos2unix": lambda path: path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n")),
        "chmod": lambda path: path.chmod(path.stat().st_mode | 0o111),
    }

    def __init__(self, root: Path):
        self.root = root                    # the image's "/"
        self.at_setup: set[str] = set()     # the paths present when setup.sh runs

    def path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def build(self, context, *, file, **_):
        for instruction, arguments in dockerfile_instructions(Path(file).read_text()):
            if instruction == "ADD":
                self.add(Path(context), *arguments.split())
            elif instruction == "RUN":
                for command in arguments.split("&&"):
                    self.run(shlex.split(command))

    def add(self, context: Path, *sources_and_dest: str) -> None:
        *sources, dest = sources_and_dest
        for source in sorted(p for pattern in sources for p in context.glob(pattern)):
            if source.is_dir():     # a folder's contents, as ADD copies them
                shutil.copytree(source, self.path(dest), dirs_exist_ok=True)
            else:
                target = self.path(dest) / source.name if dest.endswith("/") else self.path(dest)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)

    def run(self, words: list[str]) -> None:
        paths = [self.path(w) for w in words if w.startswith("/autograder")]
        if not paths:
            return
        if words[0] == "bash" and words[1].endswith("/setup.sh"):
            self.at_setup = {"/" + p.relative_to(self.root).as_posix() for p in self.root.rglob("*")}
            return
        assert words[0] in self.STEPS and (words[0] != "chmod" or words[1] == "+x"), words
        for path in paths:
            self.STEPS[words[0]](path)


@pytest.fixture(scope="module")
def otter_image(otter_zip, tmp_path_factory):
    """otter grade's image of our zip: otter's build_image prepares it, ImageLayout builds it."""
    image = ImageLayout(tmp_path_factory.mktemp("image"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(containers, "docker", image)
        containers.build_image(str(otter_zip), "ubuntu:22.04", "test", AutograderConfig(GRADE_OVERRIDES))
    return image


def test_otter_grade_image_setup_refers_only_to_files_present_at_its_step(otter_image):
    setup = otter_image.path("/autograder/source/setup.sh").read_text()
    environment = otter_image.path("/autograder/source/environment.yml").read_text()
    assert "/autograder/source/environment.yml" in otter_image.at_setup
    missing = set(AUTOGRADER_PATH.findall(setup + environment)) - otter_image.at_setup
    # setup.sh downloads its mamba installer itself, and reads otter_config.json (added later) only
    # to decide on PDF tools: the absent file declines them, and so does our config.
    downloaded = set(re.findall(r"-O\s+(\S+)", setup))
    assert missing - downloaded <= {CONFIG_PATH}
    config = json.loads(otter_image.path(CONFIG_PATH).read_text())
    assert not (config.get("pdf") or config.get("token"))
    assert otter_image.path("/autograder/submission_metadata.json").read_bytes() == b""


# The container's "/": a tmpfs over /mnt holding the host's top-level folders and the image's
# /autograder.  This project's venv (at the same path) plays otter-env under an overlay, so what
# changes lands in $3/upper: it first loses this project's own install, which environment.yml
# does not provide.  Then, as otter grade starts the container: /autograder/run_autograder.
CONTAINER_SCRIPT = """\
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /mnt
for entry in /*; do
  name=${entry#/}
  if [ -L "$entry" ]; then cp -P "$entry" "/mnt/$name"
  elif [ -d "$entry" ] && [ "$name" != mnt ]; then mkdir "/mnt/$name" && mount --rbind "$entry" "/mnt/$name"
  fi
done
mkdir /mnt/mnt /mnt/autograder
mount --bind "$1" /mnt/autograder
mount -t overlay overlay -o "lowerdir=$2,upperdir=$3/upper,workdir=$3/work" "/mnt$2"
"/mnt$2/bin/python" -m pip uninstall --quiet --yes --root-user-action=ignore keras-mnist-autograder
exec chroot /mnt env -i HOME=/root PATH="$4:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \\
  /autograder/run_autograder
"""
# Stands in for mamba: run_autograder's `mamba activate otter-env` puts this project's venv first on PATH.
MAMBA = """#!/bin/sh
echo 'mamba() {{ [ "$1 $2" = "activate {env}" ] && export PATH="{venv}/bin:$PATH"; }}'
"""


def mamba_stand_in(where: Path) -> Path:
    (where / "mamba").write_text(MAMBA.format(env=OTTER_ENV_NAME, venv=VENV))
    (where / "mamba").chmod(0o755)
    return where


def grade_in_container(image: ImageLayout, notebook: Path, where: Path, mamba: Path):
    """One `otter grade` container: a copy of the image, the notebook and an empty results file
    copied in (as otter's grade_submission does), run_autograder run; its results.pkl loaded."""
    shutil.copytree(image.root, where / "root", symlinks=True)
    autograder = where / "root" / "autograder"
    shutil.copy(notebook, autograder / "submission" / notebook.name)
    (autograder / "results" / "results.pkl").touch()
    (where / "upper").mkdir()
    (where / "work").mkdir()
    proc = subprocess.run(["unshare", "--mount", "--", "/bin/sh", "-c", CONTAINER_SCRIPT, "container",
                           str(autograder), str(VENV), str(where), str(mamba)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # run_autograder really installed the zip's wheel into the environment it graded with.
    assert (where / "upper" / SITE_PACKAGES / "autograder" / "interop" / "otter_plugin.py").is_file()
    with open(autograder / "results" / "results.pkl", "rb") as f:
        return dill.load(f)


def otter_run(otter_zip: Path, notebook: Path, where: Path) -> dict:
    proc = subprocess.run([str(OTTER), "run", "--no-logo", "-a", str(otter_zip), "-o", str(where), str(notebook)],
                          capture_output=True, text=True, cwd=where)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads((where / "results.json").read_text())


@pytest.fixture(scope="module")
def otter_graded(otter_zip, otter_image, tmp_path_factory):
    """Each of RUNS graded, two at a time (each kernel uses one thread): Gradescope's tests of an
    `otter run` (a list of dicts), otter's GradingResults of a container (None where it cannot mount)."""
    mamba = mamba_stand_in(tmp_path_factory.mktemp("mamba"))

    def grade(run):
        layout, name = run
        where, notebook = tmp_path_factory.mktemp(f"{layout}-{name}"), CORPUS / f"{name}.ipynb"
        if layout == OTTER_RUN:
            return otter_run(otter_zip, notebook, where)["tests"]
        return grade_in_container(otter_image, notebook, where, mamba) if CAN_MOUNT else None

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(RUNS, pool.map(grade, RUNS)))


@pytest.fixture(scope="module")
def otter_scores(otter_graded):
    """Per-question scores of each of RUNS."""
    return {(layout, name): None if graded is None else _question_scores(graded, "name") if layout == OTTER_RUN
            else {q: graded.get_score(q) for q in CONFIG.question_ids}
            for (layout, name), graded in otter_graded.items()}


@pytest.mark.slow
def test_container_grading_leaves_this_venv_as_it_was(otter_scores):
    where = subprocess.run([sys.executable, "-c", "import autograder; print(autograder.__file__)"],
                           capture_output=True, text=True, cwd="/").stdout.strip()
    assert Path(where) == ROOT / "autograder" / "__init__.py"


@pytest.mark.slow
@pytest.mark.parametrize("layout,name", RUNS)
def test_otter_gives_the_same_question_scores_as_autograder_grade(layout, name, otter_scores, graded):
    if otter_scores[layout, name] is None:
        pytest.skip(NO_MOUNT)
    ours = _question_scores(graded.results(name)["tests"], "number")
    assert otter_scores[layout, name] == ours
    assert set(ours) == set(CONFIG.question_ids)


def _figures(output: str) -> list[str]:
    return [line.strip().split("message: ", 1)[-1] for line in output.splitlines() if messages.MEASURED in line]


THRESHOLDS = {c.number: c.params["threshold"] for c in CONFIG.checks if "threshold" in c.params}


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for layout, name in RUNS if layout == OTTER_RUN])
def test_otter_output_tells_the_measured_figures_beside_each_accuracy_check(name, otter_graded):
    """What otter's run trained, measured in otter's process: an accuracy above each threshold the solution
    passes, stated beside that check; nothing for the template, which trains nothing."""
    told = {}
    for test in otter_graded[OTTER_RUN, name]:
        for line in test["output"].splitlines():
            if messages.MEASURED in line:
                told[line.strip().split(" message: ")[0]] = line
    assert set(told) == (set(THRESHOLDS) if name == "solution" else set())
    for number, line in told.items():
        accuracy = float(re.search(r"précision (\d+\.\d+) %", line).group(1)) / 100
        assert accuracy >= THRESHOLDS[number] and f"(seuil {THRESHOLDS[number] * 100:g} %)" in line
        assert "confusions les plus fréquentes : un " in line


def test_the_plugin_tells_what_results_json_tells_from_the_same_capture(unpacked, graded, tmp_path):
    """Given the capture `autograder grade` scored, otter's plugin tells each accuracy check's figures digit for
    digit as results.json tells them: one computation, in the process that grades (not the kernel)."""
    config = json.loads((unpacked / "otter_config.json").read_text())["plugins"][0][PLUGIN_NAME]
    restore(KeptCapture.read(graded.out / "solution"), graded.out / STORE, tmp_path / "work" / "capture")
    plugin = AutograderPlugin(str(tmp_path / "solution.ipynb"), {}, config)
    plugin._workdir, plugin._mnist_file = str(tmp_path / "work"), ensure_mnist()
    passed = SimpleNamespace(results={q.id: SimpleNamespace(test_case_results=[
        abstract_test.TestCaseResult(abstract_test.TestCase(c.number, None, False, c.points, None, None),
                                     "✅ Test case passed", True)
        for c in q.checks]) for q in CONFIG.questions})
    plugin.after_grading(passed)
    told = {r.test_case.name: r.test_case.success_message for file in passed.results.values()
            for r in file.test_case_results if r.test_case.success_message}
    ours = {t["number"]: line for t in graded.results("solution")["tests"] for line in _figures(t["output"])}
    assert told == ours and set(ours) == set(THRESHOLDS)
    assert not (tmp_path / "work").exists()


def expected_question_scores(failing: list[str]) -> dict[str, float]:
    return {q.id: sum(c.points for c in q.checks if c.number not in failing) for q in CONFIG.questions}


DOCKER_NOTEBOOKS = ["solution", "batch_64", "template"]


@pytest.mark.skipif(os.environ.get("AUTOGRADER_OTTER_DOCKER") != "1", reason="opt-in: make test-otter-docker")
def test_otter_grade_in_docker_gives_the_expected_question_scores(otter_zip, expected, tmp_path):
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    submissions.mkdir()
    out.mkdir()
    for name in DOCKER_NOTEBOOKS:
        shutil.copy(CORPUS / f"{name}.ipynb", submissions)
    # A site that mirrors Docker Hub names its copy of otter's base image (ubuntu:22.04) in OTTER_BASE_IMAGE.
    image = ["--image", os.environ["OTTER_BASE_IMAGE"]] if os.environ.get("OTTER_BASE_IMAGE") else []
    proc = subprocess.run([str(OTTER), "grade", "-n", CONFIG.name, "-a", str(otter_zip), "-o", str(out),
                           "--containers", "2", *image, str(submissions)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "final_grades.csv", newline="") as f:
        rows = {row["file"]: row for row in csv.DictReader(f)}
    for name in DOCKER_NOTEBOOKS:
        row = rows[f"{name}.ipynb"]
        assert row["grading_status"] == "Completed", row
        assert {q: float(row[q]) for q in CONFIG.question_ids} == expected_question_scores(expected[name]["failing"])
