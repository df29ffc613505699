"""The instructor's review loop on a graded folder: rescore, overrides, regrading some submissions, history.

Each test works on its own copy (hard links) of a few submissions of the graded corpus and their kept
artifacts: nothing is graded again but one invalid file.  That a rescore under another rubric gives what
a regrade under it gives is proved in test_acceleration.py (rescored_b against unaccelerated).
"""

import html
import json
from dataclasses import replace
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from autograder.cli.main import main
from autograder.core.config import load_config
from autograder.distribution import review
from autograder.pipeline.keep import KEPT_FILE, STORE, KeptCapture

from .conftest import graded_copy, variant_rubric

NAMES = ["solution", "epochs_3", "no_batchnorm"]
CONFIG = load_config()


@pytest.fixture
def folder(graded, tmp_path):
    return graded_copy(graded.out, NAMES, tmp_path / "out")


def files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def results(out: Path, name: str) -> dict:
    return json.loads((out / name / "results.json").read_text())


def history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


def test_an_override_is_applied_shown_and_kept_by_a_rescore_that_changes_nothing_else(graded, tmp_path, capsys):
    folder = graded_copy(graded.out, ["solution", "epochs_3"], tmp_path / "out")
    before = {n: results(folder, n) for n in ("solution", "epochs_3")}
    reason = "Précision à 0,94 : la copie est juste sous le seuil, accordé après lecture"
    assert main(["override", str(folder), "epochs_3", "q3.1", "2.5", "--reason", reason]) == 0
    assert results(folder, "epochs_3")["score"] == before["epochs_3"]["score"] + 2.5
    page = html.unescape((folder / "epochs_3" / "feedback.html").read_text())
    assert f"Points ajustés par l'enseignant : 2.5 / 3 — {reason}" in page
    assert "epochs_3,q3.1,2.5," in (folder / "overrides.csv").read_text()
    lms = (folder / "grades_moodle.csv").read_text()
    assert f"epochs_3,{before['epochs_3']['score'] + 2.5:g}," in lms
    index = BeautifulSoup((folder / "index.html").read_text(), "html.parser")
    assert "points ajustés" in index.select_one('tr[data-submission="epochs_3"]').get_text()

    overridden = results(folder, "epochs_3")
    capsys.readouterr()
    assert main(["rescore", str(folder), "--workers", "1"]) == 0
    assert "Nothing changed" in capsys.readouterr().err
    for name in before:          # the same reports, the override still applied
        assert results(folder, name)["tests"] == (overridden if name == "epochs_3" else before[name])["tests"]
    assert [e["command"] for e in history(folder)] == ["override", "rescore"]
    assert history(folder)[0]["changed"] == {"epochs_3": ["q3.1"]} and history(folder)[1]["changed"] == {}

    assert main(["override", str(folder), "epochs_3", "q3.1", "--remove"]) == 0
    assert results(folder, "epochs_3")["tests"] == before["epochs_3"]["tests"]


@pytest.mark.parametrize("args, error", [
    (["nobody", "q1.1", "1", "--reason", "x"], "no graded submission 'nobody'"),
    (["solution", "q9.1", "1", "--reason", "x"], "no check 'q9.1'"),
    (["solution", "q1.1", "3", "--reason", "x"], "points 3 out of range for q1.1 (0 to 1)"),
    (["solution", "q1.1", "1", "--reason", "  "], "a reason is required"),
    (["solution", "q1.1", "--remove"], "no override of q1.1 for solution to remove"),
])
def test_a_bad_override_is_refused_and_nothing_is_written(folder, capsys, args, error):
    before = files(folder)
    assert main(["override", str(folder), *args]) == 2
    assert error in capsys.readouterr().err.replace("\n", " ")
    assert files(folder) == before


def test_a_hand_edited_overrides_file_is_applied_by_report_or_refused_with_its_line(folder, capsys):
    (folder / "overrides.csv").write_text("submission,check,points,reason,date\n"
                                          "solution,q4.4,1,Couche cachée recopiée du cours,\n")
    assert main(["report", str(folder)]) == 0
    assert results(folder, "solution")["score"] == results(folder, "solution")["max_score"] - 1
    assert history(folder)[-1]["changed"] == {"solution": ["q4.4"]}
    (folder / "overrides.csv").write_text("submission,check,points,reason,date\nsolution,q4.4,abc,x,\n")
    before = files(folder)
    assert main(["report", str(folder)]) == 2
    assert "line 2: points 'abc' is not a number" in capsys.readouterr().err.replace("\n", " ")
    assert files(folder) == before


def test_a_rescore_that_needs_a_capture_the_folder_lacks_is_refused_before_anything_is_written(folder, tmp_path,
                                                                                               capsys):
    before = files(folder)
    more = variant_rubric(tmp_path / "more.toml")
    more.write_text(more.read_text() + '\n[[question]]\nid = "q5"\ntitle = "Encore"\n[[question.check]]\n'
                    'function = "trained"\npoints = 1\ndescription = "Entraîné."\n')
    unknown = variant_rubric(tmp_path / "unknown.toml")
    unknown.write_text(unknown.read_text().replace('function = "trained"', 'function = "trained_twice"', 1))
    for rubric, error in ((more, "no capture of question(s) q5: a regrade is needed"),
                          (unknown, "check function(s) trained_twice not in this grader's rubric")):
        assert main(["--config", str(rubric), "rescore", str(folder)]) == 2
        assert error in capsys.readouterr().err.replace("\n", " ")
    (folder / "epochs_3" / KEPT_FILE).unlink()          # graded by a version that kept nothing
    before.pop(f"epochs_3/{KEPT_FILE}")
    assert main(["rescore", str(folder)]) == 2
    assert "epochs_3: graded without kept artifacts (an older grader version): regrade needed" in \
        capsys.readouterr().err.replace("\n", " ")
    assert files(folder) == before


def test_an_interrupted_rescore_leaves_every_submission_as_it_was_and_a_committed_one_is_finished(folder,
                                                                                                 monkeypatch):
    before = files(folder)
    staged = []

    def dies_on_the_second(out, config, report, kept, overrides):
        if staged:
            raise KeyboardInterrupt
        staged.append(report.submission)
        target = out / review.STAGING / report.submission
        target.mkdir(parents=True)
        (target / "results.json").write_text("{}")
        return report

    monkeypatch.setattr(review, "_staged", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        review.rescore(folder, CONFIG)
    assert {k: v for k, v in files(folder).items() if not k.startswith(review.STAGING)} == before
    review.recover(folder)                  # the next command drops what never reached its commit mark
    assert files(folder) == before
    staging = folder / review.STAGING / "solution"
    staging.mkdir(parents=True)
    (staging / "results.json").write_text('{"score": 42}')
    (folder / review.STAGING / review.COMMIT).write_text("")
    review.recover(folder)                  # ... and finishes one that did
    assert results(folder, "solution") == {"score": 42} and not (folder / review.STAGING).exists()


def test_grade_replace_grades_some_again_and_writes_the_class_outputs_of_the_whole_folder(folder, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "no_batchnorm.ipynb").write_text("{pas du json")
    kept_before = sorted((folder / STORE).rglob("*"))
    assert main(["grade", str(inbox), "--out", str(folder), "--replace"]) == 0
    assert results(folder, "no_batchnorm")["status"] == "invalid_notebook"
    assert not (folder / "no_batchnorm" / KEPT_FILE).exists()           # the old folder is gone, not mixed in
    grades = (folder / "grades.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in grades[1:]] == sorted(NAMES)
    assert [e["command"] for e in history(folder)] == ["grade --replace"]
    assert history(folder)[0]["changed"] == {"no_batchnorm": []} and not (folder / review.ASIDE).exists()
    assert sorted((folder / STORE).rglob("*")) == kept_before


def test_the_class_report_shows_the_rubric_and_flags_one_edited_since_grading(folder, tmp_path):
    assert main(["report", str(folder)]) == 0
    page = BeautifulSoup((folder / "index.html").read_text(), "html.parser")
    assert page.select_one("#rubric").get_text() and page.select_one("#rubric-edited") is None
    (folder / "history.jsonl").write_text(json.dumps({"time": "2026-12-01T10:00:00+00:00", "command": "grade",
                                                      "version": "0.1.0", "rubric": "0123456789abcdef",
                                                      "changed": {}}) + "\n")
    assert main(["report", str(folder)]) == 0
    page = BeautifulSoup((folder / "index.html").read_text(), "html.parser")
    assert "modifiée depuis la dernière correction" in page.select_one("#rubric-edited").get_text()
    assert page.find("a", href="history.jsonl") is not None


def test_kept_artifacts_are_shared_across_the_class(graded):
    """Honest submissions trained on the same images keep their fingerprints once: the store holds less
    than the captures it stands for."""
    kept = [json.loads((p.parent / KEPT_FILE).read_text()) for p in graded.out.glob(f"*/{KEPT_FILE}")]
    objects = [a["object"] for k in kept for named in k["arrays"].values() for a in named.values()]
    objects += [o for k in kept for o in k["files"].values()]
    assert len(kept) > 30 and len(set(objects)) < len(objects) / 2
    stored = sum(p.stat().st_size for p in (graded.out / STORE).rglob("*") if p.is_file())
    assert stored / len(kept) < 10 * 2**20, stored / len(kept)      # under 10 MB per submission


def test_scored_artifacts_are_keyed_by_what_they_depend_on_not_by_points_or_thresholds(folder, tmp_path):
    kept = KeptCapture.read(folder / "solution")
    variant = load_config(variant_rubric(tmp_path / "variant.toml"))      # other thresholds and points
    margins = load_config(variant_rubric(tmp_path / "margins.toml"))
    margins = replace(margins, contamination=replace(margins.contamination, min_rows=11))
    fewer = replace(CONFIG, questions=CONFIG.questions[:3])
    assert kept.scored["key"] == kept.scored_key(CONFIG) == kept.scored_key(variant)
    assert kept.stored_artifacts(variant, folder / STORE) is not None
    assert len({kept.scored_key(c) for c in (CONFIG, margins, fewer)}) == 3
    assert kept.stored_artifacts(margins, folder / STORE) is None


def test_a_rescore_the_stored_artifacts_cannot_serve_scores_from_the_capture_and_gives_what_they_give(
        graded, tmp_path):
    """A contamination setting changed (one that changes no grade of this one): the submission is scored from
    its restored capture, as in grading, and that computes what grading stored, digit for digit, so the
    reports are those of a rescore from the stored artifacts; damaged stored artifacts are computed again.
    (One submission: each costs a scoring as long as grading's.)"""
    names = ["epochs_3"]
    folder = graded_copy(graded.out, names, tmp_path / "out")
    kept = {n: KeptCapture.read(folder / n) for n in names}
    damaged = folder / STORE / kept["epochs_3"].scored["object"][:2] / kept["epochs_3"].scored["object"]
    damaged.unlink()                                     # a hard link: the graded corpus keeps its copy
    damaged.write_bytes(b"damaged")
    variant = variant_rubric(tmp_path / "variant.toml")
    margins = tmp_path / "margins.toml"
    margins.write_text(variant.read_text().replace("min_rows = 10", "min_rows = 11"))
    assert main(["--config", str(margins), "rescore", str(folder), "--workers", "1"]) == 0
    for name in names:
        now = KeptCapture.read(folder / name)
        assert now.scored["key"] == now.scored_key(load_config(margins)) != kept[name].scored["key"]
        assert now.scored["object"] == kept[name].scored["object"]      # the same artifacts, computed again
        assert now.stored_artifacts(load_config(margins), folder / STORE) is not None
    stored = graded_copy(graded.out, names, tmp_path / "stored")
    assert main(["--config", str(variant), "rescore", str(stored), "--workers", "1"]) == 0
    reports = ("results.json", "feedback.html")
    assert {k: v for k, v in files(folder).items() if k.endswith(reports)} == \
        {k: v for k, v in files(stored).items() if k.endswith(reports)}
