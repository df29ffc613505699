"""The class report: index.html's figures, suspected copies, the roster and the LMS exports.

The copy and roster tests build a small class in tmp_path (notebooks mapped like the grader maps
them, results.json written by the grader's own report code) and run no kernel. The page test reads
the page that grading the corpus wrote (the session's ``graded`` fixture).
"""

import csv
import io
import json
import os
import re
import statistics
import subprocess
import sys
import unicodedata
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from autograder.cli.main import main
from autograder.core.config import load_config
from autograder.core.results import CheckOutcome, GradeReport, QuestionMeasurement, Status
from autograder.classwide import similarity
from autograder.classwide.class_report import INDEX, load_reports
from autograder.pipeline.report import PLAN_KEY, executed_notebook, write_submission_reports
from autograder.classwide.roster import CANVAS, CANVAS_COLUMNS, MOODLE, RosterError, load_roster
from autograder.notebook.mapping import map_cells, template_cells

from .conftest import CORPUS

CONFIG = load_config()
TEMPLATE = nbformat.read(CONFIG.student, as_version=4)
SOLUTION = nbformat.read(CORPUS / "solution.ipynb", as_version=4)

# --- what students write ------------------------------------------------------------------------

Q2_LIST = """model = keras.Sequential([
    keras.Input(shape=(784,)),
    keras.layers.BatchNormalization(),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
model.fit(X_train, y_train)
accuracy = model.evaluate(X_test, y_test)[1]
print("Précision : %.2f" % accuracy)
"""
Q4_FUNCTIONAL = """# Réseau plus profond, avec l'API fonctionnelle
entree = keras.Input(shape=(784,))
couche = keras.layers.BatchNormalization()(entree)
couche = keras.layers.Dense(200, activation="relu")(couche)
couche = keras.layers.Dropout(0.2)(couche)
sortie = keras.layers.Dense(10, activation="softmax")(couche)
model = keras.Model(entree, sortie)
model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
model.fit(X_train, y_train, batch_size=128, epochs=5)
accuracy = model.evaluate(X_test, y_test)[1]
print("Précision : %.3f" % accuracy)
"""
CONFUSION = """# Matrice de confusion sur le jeu de test
predictions = model.predict(X_test).argmax(axis=1)
verites = y_test.argmax(axis=1)
matrice = np.zeros((10, 10), dtype=int)
for vrai, predit in zip(verites, predictions):
    matrice[vrai, predit] += 1
erreurs = [(i, j, matrice[i, j]) for i in range(10) for j in range(10) if i != j]
erreurs.sort(key=lambda e: -e[2])
print("Confusions les plus fréquentes :", erreurs[:5])
"""
MISCLASSIFIED = """# Quelques images mal classées
mal_classees = np.where(predictions != verites)[0][:8]
fig, axes = plt.subplots(1, 8, figsize=(12, 2))
for ax, indice in zip(axes, mal_classees):
    ax.imshow(X_test[indice].reshape(28, 28), cmap="gray")
    ax.set_title(f"{verites[indice]} -> {predictions[indice]}")
    ax.axis("off")
plt.show()
"""
RENAMES = {"entree": "x_in", "couche": "h", "sortie": "y_out", "predictions": "preds", "verites": "labels",
           "matrice": "conf", "vrai": "a", "predit": "b", "erreurs": "errs", "mal_classees": "wrong",
           "indice": "k", "fig": "figure", "axes": "axs", "ax": "panel"}
Q4_LIST = """model = keras.Sequential([
    keras.layers.BatchNormalization(input_shape=(784,)),
    keras.layers.Dense(128, activation='relu'),
    keras.layers.Dense(10, activation='softmax'),
])
model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
model.fit(X_train, y_train, batch_size=128, epochs=5)
accuracy = model.evaluate(X_test, y_test)[1]
print("Précision : %.3f" % accuracy)
"""
HISTORY = """# Courbes d'apprentissage
historique = model.fit(X_train, y_train, batch_size=128, epochs=5, validation_split=0.1, verbose=0)
plt.plot(historique.history["accuracy"], label="entraînement")
plt.plot(historique.history["val_accuracy"], label="validation")
plt.xlabel("époque")
plt.legend()
plt.show()
"""
SKLEARN_CONFUSION = """from sklearn.metrics import confusion_matrix
y_predit = np.argmax(model.predict(X_test), axis=1)
y_vrai = np.argmax(y_test, axis=1)
cm = confusion_matrix(y_vrai, y_predit)
print(cm)
plt.imshow(cm, cmap="Blues")
plt.colorbar()
plt.title("Matrice de confusion")
plt.show()
"""
Q3_SWAPPED = """# Entrainer le réseau avec 5 époques
historique = model.fit(X_train, y_train, epochs=5, batch_size=128, verbose=0)

# Calculer la précision
accuracy = model.evaluate(X_test, y_test)[1]
print("Précision : %.3f" % accuracy)
"""
SUMMARY = "model.summary()\n"


def rename(source: str) -> str:
    """The copier's disguise: every own name changed, comments rewritten."""
    for old, new in RENAMES.items():
        source = re.sub(rf"\b{old}\b", new, source)
    return re.sub(r"#.*", "# my own comment, honestly", source)


def solution_cell(question: str) -> str:
    return next(c.source for c in SOLUTION.cells if c.metadata.get("autograder", {}).get("question") == question)


def notebook(answers: dict[str, str] | None = None, added: dict[str, list[str]] | None = None,
             order: list[str] | None = None) -> nbformat.NotebookNode:
    """The template with the solution's answers, ``answers`` instead where given, and cells added after questions."""
    nb = nbformat.read(CONFIG.student, as_version=4)
    cells, questions = [], {}
    for cell in nb.cells:
        q = cell.metadata.get("autograder", {}).get("question")
        if q is None:
            cells.append(cell)
            continue
        cell.source = (answers or {}).get(q, solution_cell(q))
        questions[q] = [cell] + [nbformat.v4.new_code_cell(src) for src in (added or {}).get(q, [])]
        cells.append(q)
    placed = iter(order or [])   # question slots filled in another order: cells moved around
    nb.cells = [c for item in cells for c in (questions[next(placed, item)] if isinstance(item, str) else [item])]
    return nb


CLASS = {
    "alice": notebook({"q2": Q2_LIST, "q4": Q4_FUNCTIONAL}, {"q4": [CONFUSION, MISCLASSIFIED]}),
    # alice's work, renamed, re-commented, her added cells swapped and moved with q4 before q3
    "bob": notebook({"q2": rename(Q2_LIST), "q4": rename(Q4_FUNCTIONAL)},
                    {"q2": [rename(MISCLASSIFIED), rename(CONFUSION)]}, order=["q1", "q2", "q4", "q3"]),
    "carol": notebook(),
    "dave": notebook({"q4": Q4_LIST}, {"q3": [HISTORY]}),
    "erin": notebook({"q2": Q2_LIST, "q4": Q4_LIST}, {"q4": [SKLEARN_CONFUSION]}),
    # everyone writes the one-line q3 alike, and adds the same one-liner
    **{name: notebook({"q3": Q3_SWAPPED}, {"q1": [SUMMARY]}) for name in ("frank", "gina", "hugo", "ines")},
}


def write_submission(out: Path, name: str, nb, *, status=Status.OK, failing=(), measurements=None,
                     notes=(), restarts=0) -> None:
    """What grading writes for one submission: results.json, feedback.html, executed.ipynb (no kernel run)."""
    outcomes = {c.number: CheckOutcome(c.number, c.number not in failing, "à corriger") for c in CONFIG.checks}
    report = GradeReport.of(CONFIG, name, status, outcomes, notes=list(notes), duration_s=1.0, kernel_restarts=restarts,
                            measurements={q: QuestionMeasurement.from_dict(m) for q, m in (measurements or {}).items()})
    executed = executed_notebook(nb, map_cells(nb, template_cells(TEMPLATE)), outputs={}, counts={}, limit=1000)
    write_submission_reports(out / name, CONFIG, report, executed)


@pytest.fixture
def class_dir(tmp_path):
    out = tmp_path / "out"
    for i, (name, nb) in enumerate(CLASS.items()):
        write_submission(out, name, nb, failing=("q3.1",) if i % 3 else ())
    return out


def pairs_in(out: Path) -> set[frozenset]:
    codes = similarity.class_code(out, sorted(p.name for p in out.iterdir()), CONFIG)
    return {frozenset((p.a, p.b)) for p in similarity.suspected_copies(codes, CONFIG)}


# --- suspected copies ---------------------------------------------------------------------------

SIMILARITY_RUN = """
import json, sys
from pathlib import Path
from autograder.classwide import similarity
from autograder.core.config import load_config

config = load_config()
out = Path(sys.argv[1])
codes = similarity.class_code(out, sorted(p.name for p in out.iterdir()), config)
prints = {c.submission: sorted(similarity._fingerprint(c.text, config.class_report.copies, []).hashes) for c in codes}
pairs = [(p.a, p.b, p.overlap, p.share_a, p.share_b) for p in similarity.suspected_copies(codes, config)]
print(json.dumps([prints, pairs]))
"""


def test_the_suspected_copies_are_the_same_in_every_process(class_dir):
    """Python's str hash is salted per process: the k-grams are hashed with one that is not."""
    runs = {subprocess.run([sys.executable, "-c", SIMILARITY_RUN, str(class_dir)], check=True, text=True,
                           capture_output=True, env=dict(os.environ, PYTHONHASHSEED=seed)).stdout for seed in ("1", "2")}
    assert len(runs) == 1
    prints, pairs = json.loads(runs.pop())
    assert prints["alice"] and [p[:2] for p in pairs] == [["alice", "bob"]]


def test_a_disguised_copy_is_flagged_with_its_source_and_independent_solutions_are_not(class_dir):
    assert pairs_in(class_dir) == {frozenset(("alice", "bob"))}
    assert main(["report", str(class_dir)]) == 0
    page = BeautifulSoup((class_dir / INDEX).read_text(encoding="utf-8"), "html.parser")
    pair = page.select_one("#copies-suspectes article")
    assert pair["data-pair"] == "alice|bob" and float(pair["data-score"]) >= CONFIG.class_report.copies.threshold
    assert "predictions" in pair.select("pre")[0].text and "preds" in pair.select("pre")[1].text
    assert pair.select("pre mark"), "the matching code is highlighted"
    flagged = {li["data-submission"]: li.text for li in page.select("#a-examiner > ul > li[data-submission]")}
    assert set(flagged) == {"alice", "bob"}
    assert "« alice »" in flagged["bob"] and "« bob »" in flagged["alice"]


def test_what_the_template_gives_and_the_solution_weigh_nothing(class_dir):
    codes = {c.submission: c for c in similarity.class_code(class_dir, list(CLASS), CONFIG)}
    assert codes["carol"].cells == ()      # the solution only: nothing of her own
    assert all(codes[n].cells == () for n in ("frank", "gina", "hugo", "ines"))   # one-liners are too short
    assert len(codes["alice"].cells) == 4 and len(codes["bob"].cells) == 4


def test_folders_graded_before_cell_roles_were_recorded_are_mapped_again(class_dir):
    for path in class_dir.glob("*/executed.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            cell.metadata.pop(PLAN_KEY, None)
        nbformat.write(nb, path)
    assert pairs_in(class_dir) == {frozenset(("alice", "bob"))}


LECTURE = """# Afficher quelques prédictions (code vu en cours)
def afficher(images, titres, lignes=2, colonnes=5):
    plt.figure(figsize=(2 * colonnes, 2 * lignes))
    for i, (image, titre) in enumerate(zip(images, titres)):
        plt.subplot(lignes, colonnes, i + 1)
        plt.imshow(image.reshape(28, 28), cmap="gray_r")
        plt.title(titre)
        plt.axis("off")
    plt.tight_layout()
    plt.show()

probabilites = model.predict(X_test[:10], verbose=0)
afficher(X_test[:10], [f"prédit : {p.argmax()} ({p.max():.0%})" for p in probabilites])
erreurs = np.where(probabilites.argmax(axis=1) != y_test[:10].argmax(axis=1))[0]
print("Erreurs parmi les 10 premières images :", list(erreurs))
"""


def test_code_the_whole_class_writes_alike_flags_nobody(tmp_path):
    """A snippet shown in class, pasted by everyone beside code of their own, is everyone's (MOSS's -m)."""
    out = tmp_path / "out"
    for i, personal in enumerate([HISTORY, SKLEARN_CONFUSION, CONFUSION, MISCLASSIFIED, Q4_LIST, Q4_FUNCTIONAL]):
        write_submission(out, f"student{i}", notebook(added={"q4": [personal, LECTURE]}))
    assert pairs_in(out) == set()
    alone = replace(CONFIG, class_report=replace(CONFIG.class_report, copies=replace(
        CONFIG.class_report.copies, common_min_class=100)))    # the same class, the rule switched off
    codes = similarity.class_code(out, sorted(p.name for p in out.iterdir()), alone)
    assert len(similarity.suspected_copies(codes, alone)) >= 10


# --- roster and LMS exports -----------------------------------------------------------------------

ROSTER = """submission,identifier,name,email
alice,a.martin,Alice Martin,alice@example.org
{dupont},e.dupont,Élève Dupont,dupont@example.org
zoe,z.durand,Zoé Durand,zoe@example.org
"""


def moodle_import(text: str, users: set[str], *, mapfrom: str, grade: str) -> dict[str, float | None]:
    """Moodle's CSV grade import, with the rules of its code (grade/import/csv/classes/load_data.php).

    csv_import_reader: comma-separated UTF-8, a header of distinct names, every row as wide as the
    header. prepare_import_grade_data: a row of one field or less is skipped; the user column maps a
    row to a user, an unknown identifier aborts the whole import, and a blank one leaves the previous
    row's user in place (so it must never occur); update_grade_item: '' or '-' is no grade, anything
    else must pass unformat_float (a plain number, '.' as decimal separator) and be at most the
    default gradepointmax, 100.
    """
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip() for h in rows[0]]
    assert len(set(header)) == len(header) and {mapfrom, grade} <= set(header)
    grades = {}
    for line in rows[1:]:
        if len(line) <= 1:
            continue
        assert len(line) == len(header)
        values = dict(zip(header, (v.strip() for v in line)))
        user = values[mapfrom]
        assert user, "a blank identifier would give this row's grade to the previous row's student"
        assert user in users, f"Moodle aborts the import: no user {user!r}"
        value = values[grade]
        if value in ("", "-"):
            grades[user] = None
        else:
            assert re.fullmatch(r"-?\d+(\.\d+)?", value), f"not a number for unformat_float: {value!r}"
            grades[user] = float(value)
            assert 0 <= grades[user] <= 100
    return grades


def test_roster_lists_missing_students_and_unknown_submissions_and_moodle_imports_the_right_grades(tmp_path):
    out = tmp_path / "out"
    dupont = "Élève Dupont"
    write_submission(out, "alice", CLASS["alice"], failing=("q1.4",))
    write_submission(out, "bob", CLASS["bob"])
    write_submission(out, dupont, CLASS["carol"], status=Status.TIMEOUT, failing=("q4.4", "q4.3"))
    roster = tmp_path / "roster.csv"
    # a spreadsheet's byte-order mark, and the accent decomposed as macOS writes file names
    roster.write_text("\ufeff" + ROSTER.format(dupont=unicodedata.normalize("NFD", dupont)), encoding="utf-8")
    assert main(["report", str(out), "--roster", str(roster)]) == 0

    page = BeautifulSoup((out / INDEX).read_text(encoding="utf-8"), "html.parser")
    missing = page.select("#a-examiner li[data-missing]")
    assert [li["data-missing"] for li in missing] == ["z.durand"] and "Zoé Durand" in missing[0].text
    bob = page.select_one('#submissions-table tr[data-submission="bob"] td[data-flags]')
    assert "not_in_roster" in bob["data-flags"].split()
    assert page.select_one('#a-examiner li[data-submission="bob"] li[data-flag="not_in_roster"]')

    scores = {r.submission: r.score for r in load_reports(out, CONFIG)}
    users = {"a.martin", "e.dupont", "z.durand"}    # the course's users, bob is not one
    moodle = (out / MOODLE).read_text(encoding="utf-8")
    assert moodle_import(moodle, users, mapfrom="identifier", grade=CONFIG.name) == {
        "a.martin": scores["alice"], "e.dupont": scores[dupont], "z.durand": None}
    feedback = {row["identifier"]: row["feedback"] for row in csv.DictReader(io.StringIO(moodle))}
    assert feedback["z.durand"] == "aucune copie rendue" and feedback["a.martin"] == ""
    canvas = list(csv.DictReader(io.StringIO((out / CANVAS).read_text(encoding="utf-8"))))
    assert tuple(canvas[0])[:5] == CANVAS_COLUMNS
    assert {r["SIS User ID"]: r[CONFIG.name] for r in canvas} == {
        "a.martin": f"{scores['alice']:g}", "e.dupont": f"{scores[dupont]:g}", "z.durand": ""}
    assert {r["SIS Login ID"] for r in canvas} == {"alice@example.org", "dupont@example.org", "zoe@example.org"}


def test_without_a_roster_every_submission_is_exported_under_its_id(class_dir):
    assert main(["report", str(class_dir)]) == 0
    scores = {r.submission: r.score for r in load_reports(class_dir, CONFIG)}
    moodle = moodle_import((class_dir / MOODLE).read_text(encoding="utf-8"), set(CLASS),
                           mapfrom="identifier", grade=CONFIG.name)
    assert moodle == scores


@pytest.mark.parametrize("text, error", [
    ("submission,identifier,name\nalice,a,Alice\n", "missing: email"),
    ("submission,identifier,name,email\nalice,a,,\nbob,a,,\n", "repeated identifier: a"),
    ("submission,identifier,name,email\nalice,,,\n", "line 2 has no identifier"),
])
def test_an_unusable_roster_is_refused_before_anything_runs(tmp_path, text, error):
    roster = tmp_path / "roster.csv"
    roster.write_text(text, encoding="utf-8")
    with pytest.raises(RosterError, match=error):
        load_roster(roster)
    assert main(["grade", str(tmp_path), "--out", str(tmp_path / "out"), "--roster", str(roster)]) == 2
    assert not (tmp_path / "out").exists()


# --- the page of the graded corpus ----------------------------------------------------------------

def expected_flags(results: dict, config) -> set[str]:
    """The kinds of reasons to look at a submission, read straight from its results.json."""
    kinds = set() if results["status"] == "ok" else {"status"}
    extra = results.get("extra_data") or {}
    thresholds = {c.question: c.params["threshold"] for c in config.checks if c.function == "min_accuracy"}
    for q, measured in extra.get("measurements", {}).items():
        if any(f["test_rows"] for f in measured.get("fits", [])):
            kinds.add("test_images")
        if measured.get("test_inputs") == "not_genuine":
            kinds.add("test_inputs")
        if measured.get("accuracy") is not None and abs(measured["accuracy"] - thresholds[q]) <= 0.005:
            kinds.add("near_threshold")
        if measured.get("unaccounted"):
            kinds.add("weights")
        if measured.get("model_refused"):
            kinds.add("model")
        general, below = measured.get("generalization"), config.generalization.review_below.get(q)
        trained_on_test = any(f["test_rows"] for f in measured.get("fits", []))
        if general and below is not None and general["ratio"] < below and not trained_on_test:
            kinds.add("generalization")
    if extra.get("kernel_restarts"):
        kinds.add("restarts")
    if any(re.fullmatch(r"la cellule fournie « .+ » (avait été modifiée|manquait) et a été rétablie", n)
           for n in results.get("notes", [])):
        kinds.add("restored")
    return kinds


def test_the_corpus_page_shows_the_figures_of_the_results(graded):
    page = BeautifulSoup((graded.out / INDEX).read_text(encoding="utf-8"), "html.parser")
    results = {p.parent.name: json.loads(p.read_text()) for p in graded.out.glob("*/results.json")}
    totals = [r["score"] for r in results.values()]

    assert int(page.select_one("#submissions")["data-value"]) == len(results) > 40
    assert float(page.select_one("#mean")["data-value"]) == pytest.approx(statistics.fmean(totals), abs=1e-4)
    assert float(page.select_one("#median")["data-value"]) == pytest.approx(statistics.median(totals), abs=1e-4)
    statuses = {li["data-status"]: int(li["data-count"]) for li in page.select("#statuses li")}
    assert statuses == {s: sum(r["status"] == s for r in results.values()) for s in {r["status"] for r in results.values()}}
    assert {"ok", "timeout", "kernel_died", "invalid_notebook"} <= set(statuses)

    ran = [r for r in results.values() if r["status"] not in ("invalid_notebook", "grader_error")]
    rates = [(tr["data-check"], float(tr["data-rate"])) for tr in page.select("#checks tbody tr")]
    for number, rate in rates:
        passed = sum(t["status"] == "passed" for r in ran for t in r["tests"] if t["number"] == number)
        assert rate == pytest.approx(passed / len(ran), abs=1e-4), number
    assert [r for _, r in rates] == sorted(r for _, r in rates), "hardest first"
    assert len(rates) == len(CONFIG.checks)

    pairs = pairs_in(graded.out)
    shown = {r["data-submission"]: set(r.select_one("td[data-flags]")["data-flags"].split())
             for r in page.select("#submissions-table tbody tr")}
    assert set(shown) == set(results)
    for name, r in results.items():
        assert shown[name] == expected_flags(r, CONFIG) | ({"copy"} if any(name in p for p in pairs) else set()), name
    examine = {li["data-submission"] for li in page.select("#a-examiner > ul > li[data-submission]")}
    assert examine == {name for name, kinds in shown.items() if kinds}
    assert {"trained_on_test", "os_exit_q1", "infinite_loop_q1"} <= examine
    assert {"solution", "master"}.isdisjoint(examine)
    assert {frozenset(p["data-pair"].split("|")) for p in page.select("#copies-suspectes article")} == pairs


def test_the_generalization_signal_and_unaccounted_weights_flag_for_review():
    from autograder.classwide.class_report import flags_of

    config = replace(CONFIG, generalization=replace(CONFIG.generalization, review_below={"q4": 1.2}))

    def flags(**measured):
        report = GradeReport("x", Status.OK, (), measurements={"q4": QuestionMeasurement.from_dict(measured)})
        return {f.kind: f.text for f in flags_of(report, config)}

    ratio = lambda r: {"test_loss": 0.12 * r, "train_loss": 0.12, "test_accuracy": 0.97, "train_accuracy": 0.98,  # noqa: E731
                       "ratio": r}
    assert flags(generalization=ratio(2.6)) == {}
    assert "perte moyenne 0.091 contre 0.120" in flags(generalization=ratio(0.76))["generalization"]
    # Already flagged for the test images it trained on: one reason is enough.
    assert "generalization" not in flags(generalization=ratio(0.76), fits=[{"test_rows": 10000}])
    assert "sans entraînement enregistré" in flags(unaccounted=["les poids du modèle ont changé sans entraînement "
                                                              "enregistré"])["weights"]


# A network of one's own, short: every choice distinctive (sizes, activations, learning rate, batch size,
# epochs, validation split).
Q4_OWN = """model = keras.Sequential([keras.layers.BatchNormalization(input_shape=(784,)),
                          keras.layers.Dense(96, activation='elu'), keras.layers.Dropout(0.3),
                          keras.layers.Dense(48, activation='tanh'), keras.layers.Dense(10, activation='softmax')])
model.compile(optimizer=keras.optimizers.Adam(0.003), loss='categorical_crossentropy', metrics=['accuracy'])
model.fit(X_train, y_train, batch_size=256, epochs=7, validation_split=0.15,
          callbacks=[keras.callbacks.EarlyStopping(patience=2)])
accuracy = model.evaluate(X_test, y_test)[1]
print("Précision : %.3f" % accuracy)
"""
Q4_OWN_RENAMED = """# mon réseau
reseau = keras.Sequential([keras.layers.BatchNormalization(input_shape=(784,)),
                           keras.layers.Dense(96, activation='elu'), keras.layers.Dropout(0.3),
                           keras.layers.Dense(48, activation='tanh'), keras.layers.Dense(10, activation='softmax')])
reseau.compile(optimizer=keras.optimizers.Adam(0.003), loss='categorical_crossentropy', metrics=['accuracy'])
reseau.fit(X_train, y_train, batch_size=256, epochs=7, validation_split=0.15,  # 7 époques
           callbacks=[keras.callbacks.EarlyStopping(patience=2)])
model = reseau
accuracy = model.evaluate(X_test, y_test)[1]
print("Précision : %.3f" % accuracy)
"""


def test_a_short_distinctive_answer_copied_whole_is_listed_beside_honest_look_alikes(tmp_path):
    out = tmp_path / "out"
    for name, nb in {**CLASS, "paul": notebook({"q4": Q4_OWN}), "quentin": notebook({"q4": Q4_OWN_RENAMED})}.items():
        write_submission(out, name, nb)
    codes = similarity.class_code(out, sorted(p.name for p in out.iterdir()), CONFIG)
    pairs = {frozenset((p.a, p.b)): p for p in similarity.suspected_copies(codes, CONFIG)}
    assert set(pairs) == {frozenset(("alice", "bob")), frozenset(("paul", "quentin"))}
    short = pairs[frozenset(("paul", "quentin"))]
    settings = CONFIG.class_report.copies
    assert settings.min_whole_overlap <= short.overlap < settings.min_overlap     # too short for the old rule
    assert min(short.share_a, short.share_b) >= settings.whole_share
