"""`autograder rescore` and `autograder override`: the instructor's review loop on a graded folder."""

from __future__ import annotations

from rich.table import Table

from .console import console
from .reporting import graded_folder, refused, say_class_report


def cmd_rescore(args) -> int:
    from ..classwide.overrides import OverrideError
    from ..distribution.review import rescore
    from ..pipeline.rescore import RegradeNeeded

    folder = graded_folder(args)
    if folder is None:
        return 2
    out = folder[0]
    try:
        changes, data = rescore(*folder, workers=args.workers)
    except (RegradeNeeded, OverrideError) as exc:
        return refused(exc)
    table = Table(title=f"What the rescore changed ({len(changes)} check(s))")
    for column in ("submission", "check", "old", "new"):
        table.add_column(column, justify="right" if column in ("old", "new") else "left")
    for c in changes:
        table.add_row(c.submission, c.check, "—" if c.old is None else f"{c.old:g}", "—" if c.new is None else f"{c.new:g}")
    console.print(table if changes else "Nothing changed: every check scores as before.")
    say_class_report(out, data)
    return 0


def cmd_override(args) -> int:
    from ..classwide.overrides import OverrideError
    from ..distribution.review import override

    if args.remove == (args.points is not None):
        console.print("[red]error:[/red] give POINTS with --reason, or --remove")
        return 2
    folder = graded_folder(args)     # the submission and the check are validated with overrides.csv
    if folder is None:
        return 2
    out, config, roster = folder
    try:
        report, data = override(out, config, args.submission, args.check, args.points, args.reason or "", roster)
    except OverrideError as exc:
        return refused(exc)
    console.print(f"{args.submission}: {report.score:g} / {report.max_score:g} "
                  f"({'override of ' + args.check + ' removed' if args.remove else args.check + ' set to ' + f'{args.points:g}'})")
    say_class_report(out, data)
    return 0


def add_commands(sub) -> None:
    rs = sub.add_parser("rescore", help="score a graded folder again under the current grading.toml, without kernels")
    rs.add_argument("out", metavar="DIR", help="the --out folder of a grade run")
    rs.add_argument("--roster", default=None, help="CSV submission,identifier,name,email (as for grade)")
    rs.add_argument("--workers", type=int, default=2, help="submissions rescored in parallel (default: %(default)s)")
    rs.set_defaults(func=cmd_rescore)

    ov = sub.add_parser("override", help="set one check's points by hand for one submission (DIR/overrides.csv)")
    ov.add_argument("out", metavar="DIR", help="the --out folder of a grade run")
    ov.add_argument("submission", help="the submission's id (its folder in DIR)")
    ov.add_argument("check", help="the check's number, e.g. q4.4")
    ov.add_argument("points", type=float, nargs="?", default=None, help="its points, from 0 to the check's")
    ov.add_argument("--reason", default=None, help="why, in French: the student reads it")
    ov.add_argument("--remove", action="store_true", help="remove the override of that check")
    ov.add_argument("--roster", default=None, help="CSV submission,identifier,name,email (as for grade)")
    ov.set_defaults(func=cmd_override)
