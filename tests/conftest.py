"""Shared fixtures: the corpus is graded once per test session, in parallel, by the real CLI.

With ``-n 2 --dist loadfile --no-loadscope-reorder`` (pytest-xdist; see pyproject.toml) one worker grades
the corpus, the other runs the files that do not need it.  ``graded`` is computed by the first worker
that asks and read by the other (``once_per_run``).
"""

import fcntl
import html
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder.core.config import load_config

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
CONFIG = load_config()
# Twice the computation of the slowest corpus question (a cell's limit counts computation, not the time it waited
# for a processor: the load of the other xdist worker does not count).
CELL_TIMEOUT = os.environ.get("AUTOGRADER_TEST_CELL_TIMEOUT", "30")
# The memory bomb's page faults cost 0.55 s per GB here alone, and 9 times that in CI beside the other
# xdist worker: at grading.toml's 6144 MB it once outlasted the cell timeout and ended as a timeout, not
# a kill.  Half that limit is still twice the largest kernel of the corpus.
MEMORY_MB = "3072"
SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)


def secret_solution_lines() -> set[str]:
    """Lines that only the master's solution regions hold: none may reach anything students can read."""
    import nbformat

    master = nbformat.read(CONFIG.master, as_version=4)
    given = {line.strip() for c in master.cells for line in SOLUTION_REGION.sub("", c.source).splitlines()}
    secret = {line.strip() for c in master.cells for region in SOLUTION_REGION.findall(c.source)
              for line in region.splitlines() if line.strip()} - given
    assert "model.fit(X_train, y_train, batch_size=128, epochs=5)" in secret
    return secret


@pytest.fixture(scope="session")
def expected():
    return json.loads((CORPUS / "expected.json").read_text())


# The longest file first, on a worker of its own; then the files that need no graded corpus, so that the
# other worker runs them meanwhile; the files that read the corpus last.
FIRST = ("test_acceleration.py",)


def pytest_collection_modifyitems(items):
    uses_corpus = {item.path.name for item in items if "graded" in item.fixturenames}
    rank = {name: 0 if name in FIRST else 1 + (name in uses_corpus) for name in {i.path.name for i in items}}
    items.sort(key=lambda item: rank[item.path.name])   # stable: file order and test order kept within a rank


def once_per_run(tmp_path_factory, worker_id: str, name: str, compute):
    """``compute()``'s JSON value, computed once however many xdist workers ask: the first one computes it
    under a lock, the others wait for it and read it (its failure too)."""
    if worker_id == "master":
        return compute()
    root = tmp_path_factory.getbasetemp().parent
    done = root / f"{name}.json"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            try:
                done.write_text(json.dumps({"value": compute()}))
            except BaseException as exc:
                done.write_text(json.dumps({"error": f"{name} failed on {worker_id}: {type(exc).__name__}: {exc}"}))
                raise
        stored = json.loads(done.read_text())
    if "error" in stored:
        pytest.fail(stored["error"])
    return stored["value"]


@pytest.fixture(scope="session")
def graded(tmp_path_factory, expected, worker_id):
    """Grade every corpus notebook, a second copy of the solution and the master notebook itself."""
    fields = once_per_run(tmp_path_factory, worker_id, "graded", lambda: grade_corpus(tmp_path_factory, expected))
    return GradedBatch(Path(fields["out"]), fields["log"], fields["unchanged"], Path(fields["inbox"]))


def grade_corpus(tmp_path_factory, expected) -> dict:
    inbox = tmp_path_factory.mktemp("inbox")
    for name in expected:
        shutil.copy(CORPUS / f"{name}.ipynb", inbox / f"{name}.ipynb")
    shutil.copy(CORPUS / "solution.ipynb", inbox / "solution again.ipynb")
    shutil.copytree(CORPUS / "bad_files", inbox / "bad_files")
    shutil.copy(CORPUS / "template.ipynb", inbox / f"{ODD_NAME}.ipynb")
    write_huge_outputs_notebook(inbox / "huge_outputs.ipynb")
    write_snooping_notebook(inbox / "hostile_snooping.ipynb", inbox)
    nbgrader_dir = inbox / "submitted" / "claire" / CONFIG.name
    nbgrader_dir.mkdir(parents=True)
    shutil.copy(CORPUS / "template.ipynb", nbgrader_dir / "keras_mnist.ipynb")
    with zipfile.ZipFile(inbox / "devoir_otter.zip", "w") as archive:
        archive.write(CORPUS / "template.ipynb", "keras_mnist.ipynb")
    (inbox / "archive_corrompue.zip").write_bytes(b"PK\x03\x04 tronque")
    shutil.copy(CONFIG.master, inbox / "master.ipynb")
    (inbox / "notes.txt").write_text("not a notebook")
    out = tmp_path_factory.mktemp("graded")
    before = snapshot(ROOT), snapshot(inbox)
    proc = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", str(inbox), "--out", str(out), "--workers", "2",
         "--cell-timeout", CELL_TIMEOUT, "--memory-mb", MEMORY_MB],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": str(out), "log": proc.stdout + proc.stderr, "inbox": str(inbox),
            "unchanged": before == (snapshot(ROOT), snapshot(inbox))}


# Not grading's: the other xdist worker's pytest and import-linter caches may change meanwhile.
SNAPSHOT_SKIP = {".venv", ".cache", ".pytest_cache", ".import_linter_cache", "__pycache__", ".git", "demo-out"}


def snapshot(root: Path) -> dict:
    """Size and modification time of every file, to prove grading changed nothing outside --out."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and not SNAPSHOT_SKIP.intersection(p.relative_to(root).parts)}


def q1_only_notebooks(where: Path, count: int, pause: int = 0) -> list[Path]:
    """``count`` submissions answering q1 only (the rest left as released): seconds to grade each, plus ``pause``
    seconds of sleep in q1 (for tests that must catch a worker while it grades)."""
    import nbformat
    from tests.corpus.build_corpus import Q1, build

    where.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = where / f"q1_only_{i}.ipynb"
        q1 = Q1 + (f"\nimport time\ntime.sleep({pause})\n" if pause else "")
        nbformat.write(build(path.stem, {"q1": q1, "q2": None, "q3": None, "q4": None}, {}), path)
        paths.append(path)
    return paths


ODD_NAME = "Élève Dupont.v2.final"
HUGE_OUTPUT_BYTES = 100 * 2**20


def write_huge_outputs_notebook(path: Path) -> None:
    """The template carrying 100 MB of stale outputs, as a student's file might."""
    import nbformat

    nb = nbformat.read(CONFIG.student, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * HUGE_OUTPUT_BYTES)]
    nbformat.write(nb, path)


SNOOP = """\
import glob, os
targets = [{config!r}, {master!r}, {suite!r}] + glob.glob({inbox!r} + "/**/*.ipynb", recursive=True) \\
    + glob.glob(os.path.expanduser("~root/.local/share/jupyter/runtime/*.json")) + ["/etc/shadow"]
read = []
for path in targets:
    try:
        with open(path) as fh:
            fh.read(10)
        read.append(path)
    except OSError:
        pass
print("lus :", read)
print("uid :", os.getuid(), "/ euid :", os.geteuid())
"""


def write_snooping_notebook(path: Path, inbox: Path) -> None:
    """q1 tries to read the rubric, the master, the hidden suite, other submissions and kernels' keys."""
    import nbformat

    nb = nbformat.read(CONFIG.student, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("autograder", {}).get("question") == "q1")
    cell.source = SNOOP.format(config=str(ROOT / "grading.toml"), master=str(CONFIG.master),
                               suite=str(ROOT / "autograder" / "rubric" / "hidden_tests" / "test_rubric.py"), inbox=str(inbox))
    nbformat.write(nb, path)


class GradedBatch:
    def __init__(self, out: Path, log: str, unchanged: bool, inbox: Path):
        self.out = out
        self.inbox = inbox
        self.log = log
        self.unchanged = unchanged

    def results(self, name: str) -> dict:
        return json.loads((self.out / name / "results.json").read_text())

    def feedback(self, name: str) -> str:
        """The feedback page's text as a browser shows it (entities decoded)."""
        return html.unescape((self.out / name / "feedback.html").read_text())

    def executed(self, name: str):
        import nbformat
        return nbformat.read(self.out / name / "executed.ipynb", as_version=4)


def variant_rubric(path: Path) -> Path:
    """grading.toml with other thresholds and points (q3's accuracy threshold 0.93, q3.1 worth 2, q4.4 worth 3),
    written at ``path``: its notebooks named by absolute path, since a rubric's paths are relative to it."""
    text = (ROOT / "grading.toml").read_text(encoding="utf-8")
    for old, new in (('master = "', f'master = "{ROOT}/'), ('student = "', f'student = "{ROOT}/'),
                     ("params = { threshold = 0.90 }", "params = { threshold = 0.93 }"),
                     ('function = "fit_arguments"\npoints = 3', 'function = "fit_arguments"\npoints = 2'),
                     ('points = 2\nvisibility = "hidden"\ndescription = "Précision d\'au moins',
                      'points = 3\nvisibility = "hidden"\ndescription = "Précision d\'au moins')):
        assert old in text, old
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def rubric_b(tmp_path_factory) -> Path:
    return variant_rubric(tmp_path_factory.mktemp("rubric") / "grading.toml")


def graded_copy(out: Path, names: list[str], target: Path) -> Path:
    """Some submissions of a graded folder, with its kept artifacts, as a folder of their own: hard links
    (every write of the grader replaces a file, never changes one in place)."""
    for name in names:
        shutil.copytree(out / name, target / name, copy_function=os.link)
    shutil.copytree(out / ".kept", target / ".kept", copy_function=os.link)
    shutil.copy(out / "summary.json", target / "summary.json")
    return target
