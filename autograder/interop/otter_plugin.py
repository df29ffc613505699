"""Grading under otter-grader (`otter run`, `otter grade`, Gradescope) with our own pipeline stages.

Two halves, both shipped in the zip that ``autograder export otter`` builds:

- ``AutograderPlugin`` runs in otter's process.  Before execution it rebuilds the
  submission with the stages ``autograder grade`` plans it with (Prepare → Replay): the
  hidden preamble (offline MNIST, seeds, call recording), ``begin``/``capture`` around
  each question, and otter's check of a question right after its capture, since later
  questions reassign ``model``; the instructor's slow cells replayed from the zip's
  recording when this environment computes its key again (the same Python and libraries).
- ``check`` runs inside the kernel, called by the generated otter test files: it builds
  the question's artifacts from the capture and calls the rubric's own check function.

Otter's containment is otter's (Docker on ``otter grade``, the Gradescope container);
the hardened path is ``autograder grade`` (see SECURITY.md).
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from otter.plugins import AbstractOtterPlugin

from ..rubric import checks
from ..rubric.artifacts import load_question
from ..rubric.measures import measured
from ..core.config import Contamination, Feedback
from ..core.results import figures
from ..core.environment import kernel_env
from ..core.mnist_data import CACHE_FILE, MnistError, ensure_mnist, from_cache
from ..notebook.memo import PrefixMemo, memo_key, read_memo
from ..notebook.plan import RUNTIME_MODULE, StepKind, preamble_source
from ..notebook.prepare import not_run_reasons
from ..pipeline.stages import Pipeline, Prepare, Replay, Work

PLUGIN_NAME = f"{__name__}.AutograderPlugin"
MEMO_FOLDER = "autograder_memo"     # in the zip's files/, copied by otter beside the submission
OTTER_METADATA = "otter"
RUNTIME_MISSING = ("Le notebook n'a pas été préparé pour la correction (module de correction absent) : "
                   "signalez-le à l'enseignant.")


def _compiles(source: str) -> bool:
    """Whether IPython could start running this cell (a leftover placeholder cannot)."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        code = TransformerManager().transform_cell(source)
        compile(code, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def unrunnable_questions(cell_map, questions, placeholder: str) -> dict[str, str]:
    """Questions none of whose cells can run, with the reason `autograder grade` would give."""
    # Otter runs the notebook itself: a question "ran" when one of its cells at least compiles.
    runnable = {q for q in questions if any(_compiles(c.source) for c in cell_map.question_cells(q)
                                            if c.cell_type == "code" and c.source.strip())}
    return not_run_reasons(cell_map, questions, ran=runnable, placeholder=placeholder)


def instrumented_notebook(submission: nbformat.NotebookNode, template: nbformat.NotebookNode, *, questions,
                          placeholder: str, mnist: Path, capture_dir: Path, seed: int, threads: int,
                          memo: PrefixMemo | None = None, contamination: dict | None = None):
    """The notebook otter executes: our plan's steps as cells, otter's checks after each capture (which read
    ``contamination``, grading.toml's settings, from the runtime's configuration)."""
    replay = capture_dir.parent / "replay"
    if memo is not None:
        replay.mkdir(exist_ok=True)
    planning = Pipeline(
        Prepare(template, lambda cell_map: preamble_source(
            mnist, capture_dir, seed, threads, failed=unrunnable_questions(cell_map, questions, placeholder),
            contamination=contamination or {})),
        memo and Replay(memo, replay))
    cells = []
    for step in planning(Work(submission, capture_dir)).steps:
        cell = nbformat.v4.new_code_cell(step.source)
        if step.kind == StepKind.CAPTURE:
            cell.metadata[OTTER_METADATA] = {"tests": [step.question]}
        cells.append(cell)
    # Questions with no cell at all are checked by otter at the end, as not run.
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = nbformat.from_dict({k: v for k, v in submission.get("metadata", {}).items()
                                      if k in ("kernelspec", "language_info")})
    return nb


class AutograderPlugin(AbstractOtterPlugin):
    """Configured by ``autograder export otter`` in otter_config.json (template, placeholder, limits)."""

    _workdir: str | None = None
    _mnist_file: Path | None = None

    def _mnist(self, workdir: Path) -> Path:
        """The zip's copy when it verifies (moved out of the student's reach), else the usual sources."""
        shipped = Path.cwd() / CACHE_FILE
        if shipped.is_file():
            private = workdir / "mnist"
            private.mkdir()
            shutil.move(str(shipped), private / CACHE_FILE)
            try:
                from_cache(private)
                return private / CACHE_FILE
            except MnistError:
                pass
        return ensure_mnist(log=lambda message: None)

    def _memo(self, workdir: Path, template) -> PrefixMemo | None:
        """The zip's recording (moved out of the student's reach), if this environment gives its key."""
        shipped = Path.cwd() / MEMO_FOLDER
        if not shipped.is_dir():
            return None
        private = workdir / MEMO_FOLDER
        shutil.move(str(shipped), private)
        cfg = self.plugin_config
        if cfg.get("memo") != memo_key(template, cfg["seed"], cfg["threads"]):
            return None
        try:
            return read_memo(private)
        except (OSError, ValueError, KeyError, TypeError):   # an aid: the cells then run as written
            return None

    def before_execution(self, submission):
        cfg = self.plugin_config
        self._workdir = tempfile.mkdtemp(prefix="autograder-otter-")
        workdir = Path(self._workdir)
        capture = workdir / "capture"
        # The kernel otter starts inherits the grader's thread caps and hash seed: same training, same scores.
        os.environ.update(kernel_env(cfg["threads"]))
        template = nbformat.from_dict(cfg["template"])
        self._mnist_file = self._mnist(workdir)
        return instrumented_notebook(submission, template, questions=cfg["questions"],
                                     placeholder=cfg["placeholder"], mnist=self._mnist_file,
                                     capture_dir=capture, seed=cfg["seed"], threads=cfg["threads"],
                                     memo=self._memo(workdir, template), contamination=cfg.get("contamination"))

    def after_grading(self, results):
        if not self._workdir:
            return
        try:
            if results is not None:
                self._tell_figures(results)
        except Exception as exc:  # noqa: BLE001 - the figures are an aid: the grades stand without them
            print(f"autograder: the measured figures were not added ({type(exc).__name__}: {exc})", file=sys.stderr)
        finally:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def _tell_figures(self, results):
        """Each accuracy check's output tells what this process measured from the capture, as results.json
        does: computed here, not in the student's kernel, like the scoring process of `autograder grade`."""
        cfg = self.plugin_config
        thresholds, shown = cfg.get("thresholds", {}), Feedback(**cfg.get("feedback", {}))
        mnist = None
        for question, test_file in results.results.items():
            told = [tcr for tcr in test_file.test_case_results if tcr.test_case.name in thresholds]
            if not told:
                continue
            mnist = mnist or from_cache(self._mnist_file.parent)
            # The checks in otter's kernel already searched the training data: the figures need the model only.
            art = load_question(Path(self._workdir) / "capture", question, mnist, count_test_rows=False)
            question_measured = measured(art, mnist.y_test)
            for tcr in told:
                text = figures(question_measured, thresholds[tcr.test_case.name], shown)
                # Otter's summary shows a passed case's success message and a failed one's failure message.
                tcr.test_case.success_message = tcr.test_case.failure_message = text or None


# --- inside the kernel, called by the generated test files ------------------------------

_artifacts: dict = {}
_mnist_arrays: list = []


def check(question: str, function: str, params: dict) -> None:
    runtime = sys.modules.get(RUNTIME_MODULE)
    assert runtime is not None, RUNTIME_MISSING
    config = runtime._state["config"]
    if question not in _artifacts:
        if not _mnist_arrays:
            _mnist_arrays.append(from_cache(Path(config["mnist"]).parent))
        _artifacts[question] = load_question(Path(config["capture_dir"]), question, _mnist_arrays[0],
                                             failure=config.get("failed", {}).get(question),
                                             contamination=Contamination(**config.get("contamination", {})))
    checks.run_check(_artifacts[question], function, params)
