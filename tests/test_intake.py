"""Intake: folders, nbgrader's exchange layout and otter's zips, each with its submission id."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat

from autograder.core.config import load_config
from autograder.distribution.intake import find_submissions

CONFIG = load_config()


def ids(found):
    return {f.id: f for f in found}


def test_folders_keep_notebooks_and_list_other_files(tmp_path):
    (tmp_path / "a b").mkdir()
    (tmp_path / "a b" / "Élève Dupont.v2.final.ipynb").write_text("{}")
    (tmp_path / "a b" / "rapport.pdf").write_bytes(b"%PDF")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "x-checkpoint.ipynb").write_text("{}")
    found, ignored = find_submissions([tmp_path], tmp_path / "x")
    assert [f.id for f in found] == ["Élève Dupont.v2.final"]
    assert [p.name for p in ignored] == ["rapport.pdf"]


def test_nbgrader_exchange_layout_uses_the_student_folder(tmp_path):
    for student in ("alice", "bob"):
        d = tmp_path / "submitted" / student / "keras_mnist"
        d.mkdir(parents=True)
        shutil.copy(CONFIG.student, d / "keras_mnist.ipynb")
        (d / "timestamp.txt").write_text("2026-11-25")
    found, ignored = find_submissions([tmp_path], tmp_path / "x")
    assert sorted(f.id for f in found) == ["alice", "bob"]
    assert all(p.name == "timestamp.txt" for p in ignored)


def test_otter_zips_are_unpacked_and_bad_zips_explained(tmp_path):
    good = tmp_path / "keras_mnist_2026_11_25T10_00_00.zip"
    with zipfile.ZipFile(good, "w") as z:
        z.write(CONFIG.student, "keras_mnist.ipynb")
        z.writestr("__MACOSX/._keras_mnist.ipynb", "junk")
    with zipfile.ZipFile(tmp_path / "sans_notebook.zip", "w") as z:
        z.writestr("notes.txt", "rien")
    (tmp_path / "corrompu.zip").write_bytes(b"PK\x03\x04 not really")
    found = ids(find_submissions([tmp_path], tmp_path / "x")[0])
    assert found[good.stem].error is None
    assert nbformat.read(found[good.stem].path, as_version=4) == nbformat.read(CONFIG.student, as_version=4)
    assert "aucun notebook" in found["sans_notebook"].error
    assert "illisible" in found["corrompu"].error


def test_repeated_ids_get_a_suffix(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "devoir.ipynb").write_text("{}")
    assert sorted(f.id for f in find_submissions([tmp_path], tmp_path / "x")[0]) == ["devoir", "devoir-2"]


def test_nbgrader_generate_assignment_matches_release(tmp_path):
    """The master stays valid nbgrader source: nbgrader's own release equals ours."""
    course = tmp_path / "course"
    (course / "source" / CONFIG.name).mkdir(parents=True)
    shutil.copy(CONFIG.master, course / "source" / CONFIG.name / CONFIG.master.name)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.root = '.'\n"
        f"c.ClearSolutions.code_stub = {{'python': {CONFIG.placeholder!r}}}\n"
        f"c.ClearSolutions.text_stub = {CONFIG.placeholder!r}\n")
    bindir = str(Path(sys.executable).parent)
    proc = subprocess.run([str(Path(bindir) / "nbgrader"), "generate_assignment", CONFIG.name, "--force"],
                          cwd=course, capture_output=True, text=True,
                          env={"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = nbformat.read(course / "release" / CONFIG.name / CONFIG.master.name, as_version=4)
    assert theirs == nbformat.read(CONFIG.student, as_version=4)
