"""grading.toml, read once into plain dataclasses."""

from __future__ import annotations

import os

import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent   # never IndexError (verifier.py may sit at /)
DEFAULT_CONFIG = PROJECT_ROOT / "grading.toml"
CONFIG_ENV = "AUTOGRADER_CONFIG"     # the grading.toml a grader reads by default (a local cluster's workers)


@dataclass(frozen=True)
class Check:
    question: str
    number: str            # "q2.1": question id, dot, position of the check
    function: str          # name in autograder.rubric.checks
    points: float
    description: str       # French, shown to students
    visibility: str = "visible"   # "visible" checks run in the self-check too
    params: dict = field(default_factory=dict)
    hint: str = ""         # French: what to try when the check fails (the feedback page)


@dataclass(frozen=True)
class Question:
    id: str
    title: str
    checks: tuple[Check, ...]

    @property
    def points(self) -> float:
        return sum(c.points for c in self.checks)


@dataclass(frozen=True)
class Limits:
    cell_timeout: float = 600
    submission_timeout: float = 2400
    max_kernel_restarts: int = 3
    seed: int = 1234
    threads: int = 1
    output_limit: int = 10000
    memory_mb: int = 6144
    max_processes: int = 64
    max_file_mb: int = 1024
    isolate_network: bool = True
    isolate_filesystem: bool = True
    kernel_user: bool = True     # when the grader is root, the kernel runs as a uid of its own


@dataclass(frozen=True)
class LimitOverrides:
    """Limits given on the command line (or by a tool), over grading.toml's; None keeps the file's."""
    cell_timeout: float | None = None
    memory_mb: int | None = None
    seed: int | None = None

    def apply(self, limits: Limits) -> Limits:
        return replace(limits, **{k: v for k, v in asdict(self).items() if v is not None})


@dataclass(frozen=True)
class Contamination:
    margin: float = 0.4          # a training row nearer a test image than margin x its honest baseline is a disguised copy
    min_rows: int = 10           # near-duplicates count once a fit has this many (exact copies always count)
    spectrum_margin: float = 0.25   # the same rule on spectra: test images moved a little (shifted, turned, flipped)


@dataclass(frozen=True)
class Generalization:
    """A submission is flagged for review where a question's model does this much better on the test images
    than on genuine training images: mean test loss / mean training loss below ``review_below[question]``."""
    review_below: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Copies:
    """Suspected copies in the class report (classwide/similarity.py).

    Lengths are in characters of normalised code, where every name counts as one character.
    """
    threshold: float = 0.6       # a pair is listed when this share of either one's own code is found in the other's
    min_overlap: int = 200       # ... and the code they share is at least this long
    whole_share: float = 0.8     # or when this share of each one's own code is found in the other's (a whole answer) ...
    min_whole_overlap: int = 150 # ... and that shared code is at least this long
    min_cell: int = 40           # a cell with less code of its own (once template and solution are removed) is ignored
    noise: int = 25              # shortest match that counts (copydetect's noise threshold k)
    guarantee: int = 30          # any match this long is found (winnowing window = guarantee - noise + 1)
    common_share: float = 0.5    # code found in more than this share of the class is everyone's (MOSS's -m) ...
    common_min_class: int = 5    # ... once the class has this many submissions with code of their own


@dataclass(frozen=True)
class ClassReport:
    near_threshold: float = 0.005   # an accuracy this close to its threshold is worth a look
    copies: Copies = Copies()


@dataclass(frozen=True)
class Feedback:
    """What each question of a student's feedback page shows, computed in the scoring process."""
    accuracy: bool = True        # the test accuracy the grader measured, beside the rubric's threshold
    model: bool = True           # the model as graded: its layers, output and parameter count
    training: bool = True        # each recorded training and its learning curves
    confusion: bool = True       # the confusion matrix on the test images, the digits confused most
    mistakes: bool = True        # test images the model got wrong
    hints: bool = True           # for a failed check, what to try


@dataclass(frozen=True)
class Config:
    root: Path
    name: str
    master: Path
    student: Path
    placeholder: str
    limits: Limits
    questions: tuple[Question, ...]
    contamination: Contamination = Contamination()
    generalization: Generalization = Generalization()
    class_report: ClassReport = ClassReport()
    feedback: Feedback = Feedback()
    path: Path | None = None         # the grading.toml it was read from

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(c for q in self.questions for c in q.checks)

    @property
    def question_ids(self) -> tuple[str, ...]:
        return tuple(q.id for q in self.questions)

    def thresholds(self) -> dict[str, float]:
        """Each question's test accuracy threshold, where a check of the rubric sets one."""
        return {c.question: float(c.params["threshold"]) for c in self.checks if "threshold" in c.params}

    def public(self) -> Config:
        """The same rubric with only the checks students may see before grading."""
        return replace(self, questions=tuple(
            replace(q, checks=tuple(c for c in q.checks if c.visibility == "visible")) for q in self.questions))


def load_config(path: Path | str | None = None) -> Config:
    path = Path(path) if path else Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    with open(path, "rb") as fh:
        raw = tomllib.load(fh)
    root = path.resolve().parent
    questions = []
    for q in raw.get("question", []):
        checks = tuple(
            Check(
                question=q["id"],
                number=f"{q['id']}.{i}",
                function=c["function"],
                points=float(c["points"]),
                description=c["description"],
                visibility=c.get("visibility", "visible"),
                params=dict(c.get("params", {})),
                hint=c.get("hint", ""),
            )
            for i, c in enumerate(q.get("check", []), start=1)
        )
        questions.append(Question(id=q["id"], title=q["title"], checks=checks))
    a = raw["assignment"]
    return Config(
        root=root,
        name=a["name"],
        master=root / a["master"],
        student=root / a["student"],
        placeholder=a.get("placeholder", "< Compléter >"),
        limits=Limits(**raw.get("limits", {})),
        questions=tuple(questions),
        contamination=Contamination(**raw.get("contamination", {})),
        generalization=Generalization(**raw.get("generalization", {})),
        class_report=_class_report(raw.get("class_report", {})),
        feedback=Feedback(**raw.get("feedback", {})),
        path=path.resolve(),
    )


def _class_report(raw: dict) -> ClassReport:
    settings = dict(raw)
    copies = Copies(**settings.pop("copies", {}))
    return ClassReport(**settings, copies=copies)
