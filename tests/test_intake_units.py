"""Intake edge cases: repeated ids, checkpoints, notebooks inside zips, nbgrader's exact depth."""

import zipfile
from pathlib import Path

import pytest

from autograder.distribution import intake
from autograder.distribution.intake import Found, find_submissions


def notebook(path: Path, text: str = "{}") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_zip(path: Path, members: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return path


def test_repeated_ids_count_up_in_the_order_found(tmp_path):
    """The first keeps its id, the next get -2, -3; each keeps its own path."""
    paths = [notebook(tmp_path / d / "devoir.ipynb") for d in ("a", "b", "c")]
    found, ignored = find_submissions([tmp_path], tmp_path / "x")
    assert found == [Found(paths[0], "devoir"), Found(paths[1], "devoir-2"), Found(paths[2], "devoir-3")]
    assert ignored == []


def test_repeated_zip_stems_and_notebooks_share_the_suffixing(tmp_path):
    """A zip and a notebook with the same stem: the later one (sorted order) gets -2, its error kept."""
    nb = notebook(tmp_path / "devoir.ipynb")
    bad = make_zip(tmp_path / "z" / "devoir.zip", {"notes.txt": "rien"})
    found, _ = find_submissions([tmp_path], tmp_path / "x")
    assert found == [Found(nb, "devoir"), Found(bad, "devoir-2", "l'archive zip ne contient aucun notebook")]


def test_a_suffixed_id_never_collides_with_a_real_one(tmp_path):
    for d, name in (("a", "devoir"), ("b", "devoir"), ("c", "devoir-2")):
        notebook(tmp_path / d / f"{name}.ipynb")
    ids = [f.id for f in find_submissions([tmp_path], tmp_path / "x")[0]]
    assert len(set(ids)) == 3, ids


def test_checkpoints_are_neither_graded_nor_listed_at_any_depth(tmp_path):
    keep = notebook(tmp_path / "classe" / "eleve.ipynb")
    notebook(tmp_path / "classe" / ".ipynb_checkpoints" / "eleve-checkpoint.ipynb")
    notebook(tmp_path / "classe" / "sous" / ".ipynb_checkpoints" / "notes.txt")
    make_zip(tmp_path / ".ipynb_checkpoints" / "rendu.zip", {"nb.ipynb": "{}"})
    assert find_submissions([tmp_path], tmp_path / "x") == ([Found(keep, "eleve")], [])


def test_zip_never_picks_checkpoints_macosx_or_directory_entries(tmp_path):
    """However shallow, they do not count: the one real notebook, deeper down, is extracted."""
    archive = make_zip(tmp_path / "rendu.zip", {
        ".ipynb_checkpoints/a-checkpoint.ipynb": "checkpoint",
        "__MACOSX/._a.ipynb": "junk",
        "z/deep/real.ipynb": "deep",
    })
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr(zipfile.ZipInfo("0.ipynb/"), "")          # a directory named like a notebook
    [found], _ = find_submissions([archive], tmp_path / "out")
    assert found == Found(tmp_path / "out" / "0" / "real.ipynb", "rendu")
    assert found.path.read_text() == "deep"


def test_zip_with_several_notebooks_picks_the_shallowest_then_the_first_by_name(tmp_path):
    archive = make_zip(tmp_path / "rendu.zip", {"a/x.ipynb": "a/x", "z/deep/a.ipynb": "deep", "c.ipynb": "c",
                                                "b.ipynb": "b"})
    [found], _ = find_submissions([archive], tmp_path / "out")
    assert found == Found(tmp_path / "out" / "0" / "b.ipynb", "rendu")
    assert found.path.read_text() == "b"


def test_a_notebook_nested_in_folders_of_a_zip_is_extracted_by_its_own_name(tmp_path):
    archive = make_zip(tmp_path / "keras_mnist_2026.zip", {"export/sous dossier/keras_mnist.ipynb": "nb"})
    [found], _ = find_submissions([archive], tmp_path / "out")
    assert found == Found(tmp_path / "out" / "0" / "keras_mnist.ipynb", "keras_mnist_2026")
    assert found.path.read_text() == "nb"


def test_a_zip_inside_a_zip_is_not_opened(tmp_path):
    inner = make_zip(tmp_path / "inner.zip", {"keras_mnist.ipynb": "nb"})
    outer = tmp_path / "in" / "outer.zip"
    outer.parent.mkdir()
    with zipfile.ZipFile(outer, "w") as z:
        z.write(inner, "inner.zip")
    assert find_submissions([outer], tmp_path / "out")[0] == [
        Found(outer, "outer", "l'archive zip ne contient aucun notebook")]


def test_zip_members_cannot_escape_the_extract_dir_and_zips_never_share_one(tmp_path):
    """'../' in a member name is dropped; each zip extracts to its own numbered folder."""
    first = make_zip(tmp_path / "in" / "a.zip", {"../../evil.ipynb": "evil"})
    second = make_zip(tmp_path / "in" / "b.zip", {"evil.ipynb": "other"})
    found, _ = find_submissions([tmp_path / "in"], tmp_path / "out")
    assert found == [Found(tmp_path / "out" / "0" / "evil.ipynb", "a"), Found(tmp_path / "out" / "1" / "evil.ipynb", "b")]
    assert [f.path.read_text() for f in found] == ["evil", "other"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"] and first.exists() and second.exists()


def test_an_oversized_notebook_in_a_zip_is_refused_before_extraction(tmp_path, monkeypatch):
    monkeypatch.setattr(intake, "MAX_NOTEBOOK_BYTES", 10)
    archive = make_zip(tmp_path / "gros.zip", {"nb.ipynb": "x" * 11})
    assert find_submissions([archive], tmp_path / "out")[0] == [
        Found(archive, "gros", "le notebook contenu dans l'archive est trop volumineux")]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("relative, student_id", [
    ("submitted/alice/keras_mnist/tp.ipynb", "alice"),
    ("cours/submitted/bob/keras_mnist/tp.ipynb", "bob"),
    ("submitted/alice/keras_mnist/sous/tp.ipynb", "tp"),      # one level too deep
    ("submitted/alice/tp.ipynb", "tp"),                       # one level too shallow
    ("submitted/x/submitted/carol/hw/tp.ipynb", "carol"),    # the layout counted from the notebook up
])
def test_nbgrader_student_only_at_the_exact_depth(tmp_path, relative, student_id):
    path = notebook(tmp_path / relative)
    assert find_submissions([path], tmp_path / "out")[0] == [Found(path, student_id)]


def test_paths_are_taken_in_the_order_given_folders_sorted_inside(tmp_path):
    """Named files come as given (any suffix: load judges them); folders list other files as ignored."""
    named = notebook(tmp_path / "seul" / "rendu.txt")
    b = notebook(tmp_path / "dossier" / "b.ipynb")
    a = notebook(tmp_path / "dossier" / "a.ipynb")
    pdf = notebook(tmp_path / "dossier" / "rapport.pdf")
    found, ignored = find_submissions([named, tmp_path / "dossier"], tmp_path / "out")
    assert found == [Found(named, "rendu"), Found(a, "a"), Found(b, "b")]
    assert ignored == [pdf]
