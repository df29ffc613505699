"""Console output shared by the commands: the progress bar and the grade table (French, like the reports)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..runner.sandbox import describe_isolation

console = Console(stderr=True)


class RichProgress:
    def __init__(self):
        self.progress = Progress(TextColumn("Correction"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=console)
        self.task = None

    def start(self, total: int, done: int = 0):
        self.progress.start()
        self.task = self.progress.add_task("grade", total=total, completed=done, last="")

    def advance(self, report):
        self.progress.update(self.task, advance=1, last=f"{report.submission}: {report.score:g} ({report.status})")

    def stop(self):
        self.progress.stop()


def summary_table(config, reports) -> Table:
    table = Table(title=f"{config.name}: {len(reports)} copie(s)")
    table.add_column("submission")
    for q in config.questions:
        table.add_column(f"{q.id} /{q.points:g}", justify="right")
    table.add_column(f"total /{sum(q.points for q in config.questions):g}", justify="right")
    table.add_column("status")
    for r in reports:
        scores = r.question_scores()
        table.add_row(r.submission, *(f"{scores[q]:g}" for q in config.question_ids), f"{r.score:g}", r.status)
    return table


def sandbox_lines(reports) -> list[tuple[str, bool]]:
    """How the batch's kernels were isolated (English) and whether that is reduced, once per distinct way."""
    seen: dict[str, bool] = {}
    for r in reports:
        if r.sandbox:
            seen.setdefault(describe_isolation(r.sandbox), bool(r.sandbox.get("reduced")))
    return list(seen.items())


def print_sandbox(reports) -> None:
    """Under the grade table: how the kernels were isolated, in yellow when isolation is reduced."""
    for line, reduced in sandbox_lines(reports):
        console.print(line, style="yellow" if reduced else None, markup=False, soft_wrap=True)
