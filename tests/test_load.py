"""Load: every bad file gets a clear French reason; odd but valid notebooks load with a note."""

import json

import pytest

from autograder.notebook.load import load_submission
from tests.conftest import CORPUS

BAD = {
    "empty": "le fichier est vide",
    "not_json": "n'est pas un JSON valide",
    "binary_junk": "n'est pas un texte UTF-8",
    "truncated": "n'est pas un JSON valide",
    "json_list": "n'est pas un notebook Jupyter",
    "json_without_cells": "n'est pas un notebook Jupyter",
    "no_cells": "ne contient aucune cellule",
    "nbformat3_unconvertible": "n'a pas pu être converti",
    "latin1_bytes": "n'est pas un texte UTF-8",
}


def test_the_committed_bad_files_are_all_covered():
    assert {p.stem for p in (CORPUS / "bad_files").glob("*.ipynb")} == set(BAD)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_is_refused_with_its_reason(name):
    sub = load_submission(CORPUS / "bad_files" / f"{name}.ipynb")
    assert sub.notebook is None
    assert BAD[name] in sub.error


def test_unreadable_path_is_refused(tmp_path):
    sub = load_submission(tmp_path / "absent.ipynb")
    assert sub.error.startswith("le fichier n'a pas pu être lu")


@pytest.mark.parametrize("name", ["odd_nbformat3", "odd_duplicate_ids", "odd_missing_q3"])
def test_odd_notebooks_load_with_a_note(name):
    expected = json.loads((CORPUS / "expected.json").read_text())[name]
    sub = load_submission(CORPUS / f"{name}.ipynb")
    assert sub.error is None and sub.notebook.nbformat == 4
    if name != "odd_missing_q3":      # that note comes from the mapping stage
        assert any(expected["note"] in n for n in sub.notes), sub.notes
    ids = [c.get("id") for c in sub.notebook.cells]
    assert len(ids) == len(set(ids))


def test_weird_metadata_does_not_break_loading(tmp_path):
    nb = json.loads((CORPUS / "solution.ipynb").read_text())
    nb["cells"][0]["metadata"] = "oops"
    nb["cells"][1]["metadata"] = {"nbgrader": {"grade_id": ["not", "a", "string"]}}
    nb["cells"][2]["source"] = ["print(1)\n", "print(2)"]
    path = tmp_path / "weird.ipynb"
    path.write_text(json.dumps(nb))
    sub = load_submission(path)
    assert sub.error is None
    assert sub.notebook.cells[2].source == "print(1)\nprint(2)"
