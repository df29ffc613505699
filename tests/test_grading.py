"""End to end: real notebooks, real kernels, real Keras, the hidden suite under real pytest."""

import csv
import json
import os
import re
import shutil

import pytest

from tests.conftest import CONFIG, CORPUS, MEMORY_MB, ODD_NAME

CASES = sorted(json.loads((CORPUS / "expected.json").read_text()))
POINTS = {c.number: c.points for c in CONFIG.checks}
BAD_FILES = sorted(p.stem for p in (CORPUS / "bad_files").glob("*.ipynb"))


@pytest.mark.parametrize("name", CASES)
def test_each_check_scores_as_expected(graded, expected, name):
    results = graded.results(name)
    failing = {t["number"] for t in results["tests"] if t["status"] == "failed"}
    assert failing == set(expected[name]["failing"]), [
        (t["number"], t["output"]) for t in results["tests"] if t["status"] == "failed"]
    assert results["score"] == pytest.approx(sum(p for n, p in POINTS.items() if n not in failing))
    for t in results["tests"]:
        assert t["score"] == (0 if t["number"] in failing else t["max_score"])
        if t["number"] in failing:
            assert t["output"] and t["output"] != "Réussie."


def test_results_json_lists_every_check_in_gradescope_format(graded):
    for name in CASES:
        results = graded.results(name)
        assert [t["number"] for t in results["tests"]] == [c.number for c in CONFIG.checks]
        for t in results["tests"]:
            assert set(t) >= {"name", "number", "score", "max_score", "output", "visibility"}
            assert re.fullmatch(r"q\d\.\d", t["number"])
            assert t["visibility"] in ("visible", "after_published")
        assert results["status"] in ("ok", "timeout", "kernel_died", "budget")


def test_untouched_template_gets_zero_with_a_message_per_question(graded):
    results = graded.results("template")
    assert results["score"] == 0
    for t in results["tests"]:
        assert "< Compléter >" in t["output"], t


def test_infinite_loop_costs_only_its_question(graded):
    results = graded.results("infinite_loop_q1")
    assert results["status"] == "timeout"
    assert "La question q1 a dépassé le temps imparti" in results["output"]
    assert "dépassé le temps imparti" in graded.feedback("infinite_loop_q1")


def test_kernel_death_is_survived_and_named(graded):
    results = graded.results("os_exit_q1")
    assert results["status"] == "kernel_died"
    assert "La question q1 a provoqué l'arrêt du noyau" in results["output"]
    assert results["extra_data"]["kernel_restarts"] == 1


def test_training_on_test_images_is_explained(graded):
    q44 = next(t for t in graded.results("trained_on_test")["tests"] if t["number"] == "q4.4")
    assert "10000 images du jeu de test" in q44["output"]


def test_training_data_that_cannot_be_examined_is_said_not_guessed(graded):
    results = graded.results("data_from_generator")
    note = next(n for n in results["notes"] if n.startswith("question q4"))
    assert "from_generator()" in note and "aucune image de test" in note
    fits = results["extra_data"]["measurements"]["q4"]["fits"]
    assert [f["batch_size"] for f in fits] == [None]
    assert not any("taille utilisée : 32" in t["output"] for t in results["tests"])


def test_batch_size_read_from_a_dataset_is_the_one_reported(graded):
    q31 = next(t for t in graded.results("data_batch_64")["tests"] if t["number"] == "q3.1")
    assert "taille utilisée : 64 (fixée par les données passées à fit)" in q31["output"]


def test_accuracy_is_measured_in_the_students_input_space(graded):
    measured = graded.results("variant_tf_keras_scaled_stripped")["extra_data"]["measurements"]["q4"]
    assert measured["test_inputs"] == "genuine" and measured["accuracy"] > 0.95


def test_same_submission_graded_twice_gives_identical_results(graded):
    a, b = graded.results("solution"), graded.results("solution again")
    assert [t["score"] for t in a["tests"]] == [t["score"] for t in b["tests"]]
    acc = lambda r: {q: m["accuracy"] for q, m in r["extra_data"]["measurements"].items()}  # noqa: E731
    assert acc(a) == acc(b)


def test_master_notebook_runs_end_to_end_with_the_readme_accuracies(graded):
    executed = graded.executed("master")
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    text = "\n".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "Précision : 0.5558" in text          # GaussianNB, as stated in the README
    assert "Précision : 0.8603" in text          # LinearRegression (the seed printed 0.8593)
    assert graded.results("master")["score"] == 20
    skipped = [c for c in executed.cells if "otter_ignore" in c.metadata.get("tags", [])]
    assert len(skipped) == 2 and all(not c.outputs for c in skipped)


def test_untouched_template_errors_only_in_the_exercise_cells(graded):
    executed = graded.executed("template")
    erroring = [c.metadata.get("autograder", {}).get("question") for c in executed.cells
                if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs)]
    assert erroring == ["q1", "q2", "q3", "q4"]


def test_batch_reports(graded):
    with open(graded.out / "grades.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["id", "q1", "q2", "q3", "q4", "total", "status"]
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == set(CASES) | set(BAD_FILES) | {"solution again", "master", "huge_outputs", "hostile_snooping", ODD_NAME,
                             "claire", "devoir_otter", "archive_corrompue"}
    assert by_id["claire"]["status"] == by_id["devoir_otter"]["status"] == "ok"
    assert by_id["archive_corrompue"]["status"] == "invalid_notebook"
    assert by_id["solution"]["total"] == "20" and by_id["template"]["total"] == "0"
    assert by_id["batch_64"]["q3"] == "2"
    summary = json.loads((graded.out / "summary.json").read_text())
    assert summary["submissions"] == len(rows)
    assert any(p.endswith("notes.txt") for p in summary["ignored_files"])
    # Every kernel of the batch ran under the same mechanism, the one each results.json names.
    assert summary["sandbox"] == [graded.results("solution")["extra_data"]["sandbox"]]
    assert "Reports written" in graded.log


def test_feedback_is_french_and_per_question(graded):
    html = graded.feedback("batch_64")
    assert "Question q3" in html and "batchs de taille 128" in html and "échouée" in html
    assert "Note : 17.00 / 20.00" in html


def test_edited_given_code_is_restored_and_noted(graded):
    results = graded.results("variant_positional_functional")
    assert results["score"] == 20
    assert any("« one-hot » avait été modifiée et a été rétablie" in n for n in results["notes"])



@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_files_get_invalid_status_and_a_french_reason(graded, name):
    results = graded.results(name)
    assert results["status"] == "invalid_notebook" and results["score"] == 0
    assert results["output"].startswith("Copie non corrigée : fichier invalide (")
    assert len(results["tests"]) == len(CONFIG.checks)
    assert all(t["output"].startswith("Non évaluée : fichier invalide") for t in results["tests"])
    assert "fichier rendu n'est pas un notebook valide" in graded.feedback(name)


def test_odd_notebooks_are_graded_with_a_note(graded, expected):
    for name in ("odd_nbformat3", "odd_duplicate_ids", "odd_missing_q3"):
        assert any(expected[name]["note"] in n for n in graded.results(name)["notes"]), name


def test_odd_file_names_keep_their_id(graded):
    assert graded.results(ODD_NAME)["submission"] == ODD_NAME
    with open(graded.out / "grades.csv", newline="", encoding="utf-8") as fh:
        assert ODD_NAME in {row["id"] for row in csv.DictReader(fh)}


def test_huge_stale_outputs_do_not_reach_the_report(graded):
    results = graded.results("huge_outputs")
    assert results["status"] == "ok" and results["score"] == 0
    assert (graded.out / "huge_outputs" / "executed.ipynb").stat().st_size < 2 * 2**20


def event_text(graded, name):
    results = graded.results(name)
    return results["status"], results["output"]


@pytest.mark.parametrize("name, status, words", [
    ("hostile_memory_bomb", "kernel_died", f"mémoire épuisée (limite : {MEMORY_MB} Mo)"),   # --memory-mb's
    ("hostile_fork_bomb", "kernel_died", "trop de processus"),
    ("hostile_swallow_interrupts", "timeout", "a dépassé le temps imparti"),
    ("hostile_sys_exit", "ok", "SystemExit"),
    ("hostile_raise_system_exit", "ok", "SystemExit"),
    ("hostile_huge_file", "ok", "File too large"),
])
def test_hostile_code_is_contained_and_named(graded, name, status, words):
    got_status, output = event_text(graded, name)
    assert got_status == status and words in output, output


def test_printing_100_mb_is_trimmed(graded):
    path = graded.out / "hostile_print_100mb" / "executed.ipynb"
    assert path.stat().st_size < 2**20
    assert "sortie tronquée" in path.read_text()


def test_kernel_has_no_network(graded):
    executed = graded.executed("hostile_network")
    q1 = next(c for c in executed.cells if c.metadata.get("autograder", {}).get("question") == "q1")
    line = next(line for o in q1.outputs for line in o.get("text", "").splitlines() if "connexion :" in line)
    assert line.split(":")[1].strip() != "0"


def test_notebooks_cannot_touch_anything_outside_the_output_folder(graded):
    assert graded.unchanged
    for name in ("hostile_fake_results", "hostile_delete_files"):
        assert graded.results(name)["tests"][0]["status"] == "passed"   # q1 itself was fine
    assert not (graded.out / "results.json").exists()


def test_kernel_cannot_read_the_rubric_the_master_or_other_submissions(graded):
    executed = graded.executed("hostile_snooping")
    q1 = next(c for c in executed.cells if c.metadata.get("autograder", {}).get("question") == "q1")
    printed = "".join(o.get("text", "") for o in q1.outputs)
    assert "lus : []" in printed, printed
    if os.geteuid() == 0 and shutil.which("setpriv"):    # the grader is root: the kernel is not
        assert "uid : 0 " not in printed and "euid : 0" not in printed and "uid : " in printed, printed
    results = graded.results("hostile_snooping")
    assert results["score"] == 0      # the given model is not credited to a question that ignored it


def test_an_interrupted_batch_resumes_without_regrading(graded, tmp_path):
    import shutil
    import subprocess
    import sys

    out = tmp_path / "resumed"
    shutil.copytree(graded.out, out)
    (out / "template" / "results.json").unlink()          # as if grading stopped right there
    (out / "grades.csv").unlink()
    before = (out / "solution" / "results.json").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(graded.inbox), "--out", str(out),
                           "--resume", "--workers", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "solution" / "results.json").read_bytes() == before      # kept, not regraded
    assert json.loads((out / "template" / "results.json").read_text())["score"] == 0
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    with open(graded.out / "grades.csv", newline="", encoding="utf-8") as fh:
        assert rows == {r["id"]: r for r in csv.DictReader(fh)}


@pytest.mark.parametrize("name", ["solution"] + [c for c in CASES if c.startswith("variant_")])
def test_legitimate_variants_run_without_any_error(graded, name):
    results = graded.results(name)
    assert results["events"] == [] and results["status"] == "ok", results["events"]
