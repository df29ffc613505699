"""`make demo`: release the student notebook, then grade the bundled example submissions."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..core.config import Config
from ..distribution.batch import grade_batch
from ..core.mnist_data import ensure_mnist
from ..interop.release import release
from ..runner.canary import SandboxError
from .console import RichProgress, print_sandbox, summary_table
from .reporting import say_class_report

EXAMPLES = Path("assignments") / "keras_mnist" / "examples"


def run_demo(config: Config, out: Path, workers: int) -> int:
    console = Console()
    console.print(f"1. Release: {release(config)}")
    console.print(f"2. Offline MNIST: {ensure_mnist()}")
    examples = config.root / EXAMPLES
    console.print(f"3. Grading {examples} into {out}/ with {workers} worker(s)")
    progress = RichProgress()
    try:
        graded = grade_batch([examples], out, config_path=config.path, workers=workers,
                             progress=progress)
    except SandboxError as exc:      # found by the canary: nothing graded, nothing written
        console.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        return 2
    finally:
        progress.stop()
    reports = graded.reports
    console.print(summary_table(config, reports))
    print_sandbox(reports)
    table = Table(title="Test accuracy measured by the grader (genuine 10,000 test images)")
    table.add_column("submission")
    for q in config.question_ids:
        table.add_column(q, justify="right")
    for r in reports:
        accuracy = {q: m.accuracy for q, m in r.measurements.items()}
        table.add_row(r.submission, *(f"{accuracy[q]:.4f}" if accuracy.get(q) is not None else "—"
                                      for q in config.question_ids))
    console.print(table)
    console.print(f"Reports: {out}/grades.csv, {out}/summary.json, {out}/<id>/results.json, feedback.html, executed.ipynb")
    say_class_report(out, graded.outputs)
    return 0
