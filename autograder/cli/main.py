"""Command line: a thin layer over the pipeline stages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from ..core.config import DEFAULT_CONFIG, LimitOverrides, load_config
from .console import RichProgress, console, print_sandbox, summary_table
from .reporting import graded_folder, read_roster, refused, say_class_report
from .review import add_commands as add_review_commands


def cmd_grade(args) -> int:
    from ..classwide.overrides import OverrideError
    from ..distribution.batch import grade_batch
    from ..distribution.cluster import ClusterError
    from ..core.mnist_data import MnistError
    from ..runner.canary import SandboxError

    config = load_config(args.config)
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        console.print(f"[red]error:[/red] no such file or folder: {', '.join(map(str, missing))}")
        return 2
    roster = read_roster(args.roster)
    if roster is False:
        return 2
    progress = RichProgress()
    try:
        graded = grade_batch([Path(p) for p in args.paths], Path(args.out), config_path=args.config,
                             workers=args.workers, resume=args.resume, overrides=limit_overrides(args),
                             accelerate=args.accelerate, progress=progress, scheduler=args.scheduler, roster=roster,
                             replace=args.replace,
                             log=lambda line: console.print(line, style="red", markup=False, soft_wrap=True))
    except (MnistError, ClusterError, OverrideError) as exc:
        console.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        return 2
    except SandboxError as exc:      # the grader's fault, found by the canary: nothing graded, nothing written
        console.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        return 2
    finally:
        if progress.task is not None:
            progress.stop()
    if not graded.reports:
        console.print("[yellow]no notebook found in the given paths[/yellow]")
    Console().print(summary_table(config, graded.reports))
    print_sandbox(graded.reports)
    console.print(f"Reports written to {args.out}/ (grades.csv, summary.json, <id>/results.json, feedback.html)")
    say_class_report(Path(args.out), graded.outputs)
    return 0


def cmd_doctor(args) -> int:
    from .doctor import doctor

    lines, ok = doctor(load_config(args.config), Path(args.config))
    print("\n".join(lines))
    return 0 if ok else 1


def cmd_report(args) -> int:
    from ..classwide.overrides import OverrideError
    from ..distribution.review import refresh

    folder = graded_folder(args)
    if folder is None:
        return 2
    try:
        say_class_report(folder[0], refresh(*folder))
    except OverrideError as exc:
        return refused(exc)
    return 0


def cmd_release(args) -> int:
    from ..interop.release import release

    target = release(load_config(args.config), Path(args.out) if args.out else None)
    console.print(f"Student notebook written to {target}")
    return 0


def cmd_data(args) -> int:
    from ..core.mnist_data import MnistError, ensure_mnist

    try:
        path = ensure_mnist(Path(args.cache) if args.cache else None)
    except MnistError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    console.print(f"Verified MNIST at {path}")
    return 0


def cmd_check(args) -> int:
    from .check import self_check

    if not Path(args.notebook).is_file():
        console.print(f"[red]erreur :[/red] fichier introuvable : {args.notebook}")
        return 2
    print("\n".join(self_check(load_config(args.config), Path(args.config), Path(args.notebook))))
    return 0


def cmd_export(args) -> int:
    from ..core.mnist_data import MnistError
    from ..interop.otter_export import export_otter

    try:
        target = export_otter(load_config(args.config), Path(args.out))
    except MnistError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    console.print(f"Otter autograder written to {target}")
    console.print(f"  without Docker: otter run -a {target} NOTEBOOK.ipynb")
    console.print(f"  with Docker:    otter grade -n {load_config(args.config).name} -a {target} -o OUT/ SUBMISSIONS/")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(load_config(args.config), Path(args.out), args.workers)


def limit_overrides(args) -> LimitOverrides:
    """The limits `grade` was given on its command line, over grading.toml's."""
    return LimitOverrides(cell_timeout=args.cell_timeout, memory_mb=args.memory_mb)


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value
    parse.__name__ = kind.__name__      # argparse names the type in its error message
    return parse


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("keras-mnist-autograder")
    except PackageNotFoundError:    # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autograder", description="Keras MNIST practical: release and grading.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="grading.toml (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade notebooks or folders of notebooks")
    g.add_argument("paths", nargs="+", help=".ipynb files or folders searched for them")
    g.add_argument("--out", required=True, help="output folder for the reports")
    g.add_argument("--workers", type=int, default=1,
                   help="submissions graded in parallel, on a local Dask cluster of that many processes")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="grade on the Dask cluster at ADDRESS (e.g. tcp://10.0.0.5:8786) instead of this machine")
    g.add_argument("--cell-timeout", type=_positive(float), default=None,
                   help="seconds per cell (default from grading.toml)")
    g.add_argument("--memory-mb", type=_positive(int), default=None,
                   help="resident memory of a kernel's process tree before it is killed, in MB (default from "
                        "grading.toml; lower it on a machine with less than that per worker)")
    g.add_argument("--resume", action="store_true", help="keep submissions already graded in --out")
    g.add_argument("--replace", action="store_true",
                   help="grade these submissions again in an --out that holds others (a resubmission, a transient "
                        "fault); the class outputs then cover the whole folder")
    g.add_argument("--no-accelerate", dest="accelerate", action="store_false",
                   help="run every fit as written and score each submission in a fresh process: "
                        "slower, same grades")
    g.add_argument("--roster", default=None, help="CSV submission,identifier,name,email: missing students, LMS exports")
    g.set_defaults(func=cmd_grade)

    rp = sub.add_parser("report", help="rebuild the class report (index.html) and LMS exports of a graded folder")
    rp.add_argument("out", metavar="DIR", help="the --out folder of a grade run")
    rp.add_argument("--roster", default=None, help="CSV submission,identifier,name,email: missing students, LMS exports")
    rp.set_defaults(func=cmd_report)

    add_review_commands(sub)

    dr = sub.add_parser("doctor", help="what this machine allows the sandbox, and which mechanism grading will use")
    dr.set_defaults(func=cmd_doctor)

    r = sub.add_parser("release", help="write the student notebook from the master")
    r.add_argument("--out", default=None, help="folder (default: student_template/)")
    r.set_defaults(func=cmd_release)

    d = sub.add_parser("data", help="ensure the verified offline MNIST copy")
    d.add_argument("--cache", default=None)
    d.set_defaults(func=cmd_data)

    c = sub.add_parser("check", help="students: run the public checks on a notebook (French report)")
    c.add_argument("notebook")
    c.set_defaults(func=cmd_check)

    e = sub.add_parser("export", help="build an autograder for another grading tool")
    e.add_argument("target", choices=["otter"], help="otter: otter-grader / Gradescope autograder zip")
    e.add_argument("--out", default="dist", help="output folder (default: %(default)s)")
    e.set_defaults(func=cmd_export)

    m = sub.add_parser("demo", help="release, then grade the bundled example submissions")
    m.add_argument("--out", default="demo-out")
    m.add_argument("--workers", type=int, default=2)
    m.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
