"""The class report and the roster as the commands use them: `grade`, `report` and `demo`."""

from __future__ import annotations

from pathlib import Path

from .console import console


def read_roster(path: str | None):
    """The roster's students, None without one, False (said) when it cannot be used."""
    from ..classwide.roster import RosterError, load_roster

    if path is None:
        return None
    try:
        return load_roster(Path(path))
    except RosterError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return False


def say_class_report(out: Path, data):
    """Where the class report and the LMS files are, and what needs a look."""
    from ..classwide.class_report import INDEX
    from ..classwide.roster import CANVAS, MOODLE

    console.print(f"Class report: {out / INDEX} ({len(data.to_examine) + len(data.missing)} to examine, "
                  f"{len(data.pairs)} suspected cop{'y' if len(data.pairs) == 1 else 'ies'}); "
                  f"LMS: {out / MOODLE}, {out / CANVAS}")
    unknown = [r.submission for r in data.rows if any(f.kind == "not_in_roster" for f in r.flags)]
    if data.missing or unknown:
        console.print(f"[yellow]roster:[/yellow] {len(data.missing)} student(s) without a submission; "
                      f"{len(unknown)} submission(s) not on the roster, left out of the LMS files: "
                      f"{', '.join(unknown) or '-'}")
    return data


def graded_folder(args):
    """(the graded folder, its config, the roster) of `report`, `rescore`: None when either is unusable (said)."""
    from ..core.config import load_config

    out = Path(args.out)
    if not any(out.glob("*/results.json")):
        console.print(f"[red]error:[/red] no graded submission in {out} (no <id>/results.json)")
        return None
    roster = read_roster(args.roster)
    return None if roster is False else (out, load_config(args.config), roster)


def refused(exc: Exception) -> int:
    console.print(f"error: {exc}; nothing was written", style="red", markup=False, soft_wrap=True)
    return 2
