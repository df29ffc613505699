"""`make bench`: what grading costs on this machine, against the plain execution of the same cells.

Prints, from one run: the floor (nbclient running the solution notebook's cells in a plain
kernel, otter_ignore cells dropped, MNIST served locally, one thread); `autograder grade` on that
one submission, accelerated and with --no-accelerate, with the stage breakdown the grader writes
(timings.json); peak RSS and PSS per grading worker (its process, its kernel and its scoring process)
and the largest single process's peak RSS;
class throughput on a batch of corpus notebooks with 1 and 2 workers, and with 2 workers for the code
that graded when the performance issue was filed (``--baseline``, a git worktree run with this venv):
"2x today's throughput" is judged in the same run, on the same machine, over ``--pairs`` alternated
runs of both; each figure's ratio to the floor.  Figures go to stdout and to OUT/bench.json.

    .venv/bin/python benchmarks/bench.py [--out bench-out] [--batch 8] [--baseline REV | --baseline ''] [--pairs 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
CLASS = ["solution", "no_batchnorm", "sigmoid_output", "batch_64", "epochs_3", "no_hidden_layer", "undertrained",
         "variant_positional_functional", "trained_on_test", "variant_list_input_activation"]
GB = 10**9     # the performance issue's unit: its 1.5 GB is the 1.40 GiB kernel of the code it was filed on
# `autograder grade` as it was when the performance issue was filed: the commit before its first change.
BASELINE = "76b5c0ff37585506aec181ca13a217fefc6edb7c"

FLOOR = """
import sys, time, nbformat
from nbclient import NotebookClient
from autograder.core.environment import kernel_env
nb = nbformat.read(sys.argv[1], as_version=4)
cells = [c for c in nb.cells if c.cell_type == "code" and "otter_ignore" not in c.metadata.get("tags", [])]
serve = ("import keras.src.datasets.mnist as _m; _m.get_file = lambda *a, **k: %r" % sys.argv[2])
nb.cells = [nbformat.v4.new_code_cell(serve)] + cells
client = NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": sys.argv[3]}})
with client.setup_kernel(env=kernel_env(1), cwd=sys.argv[3]):
    for i, cell in enumerate(nb.cells):
        client.execute_cell(cell, i)
"""


class Measured:
    """A command's wall time, CPU time and peak RSS per worker.

    CPU is sampled per process, every process of the tree (kernels, scoring processes, workers)
    counted once with the last CPU time seen: `wait4`'s counts miss a sandboxed kernel, reparented
    when its bubblewrap parent is killed.  Each process's last 0.2 s may go uncounted."""

    def __init__(self, cmd: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None):
        self.peak_worker_rss = 0
        self.peak_worker_pss = 0
        self.peak_process_rss = 0      # the largest single process: what /usr/bin/time's maximum RSS reports
        self.cpu_by_process: dict[tuple[int, float], float] = {}
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(proc.pid, stop), daemon=True)
        watcher.start()
        _, status = os.waitpid(proc.pid, 0)
        stop.set()
        watcher.join()
        self.wall = time.monotonic() - start
        self.cpu = sum(self.cpu_by_process.values())
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode()[-3000:]}")

    def _watch(self, pid: int, stop: threading.Event) -> None:
        root = psutil.Process(pid)
        tick = 0
        while not stop.wait(0.2):
            tick += 1
            try:
                workers = [c for c in root.children() if "spawn_main" in " ".join(c.cmdline())] or [root]
                for worker in workers:
                    tree = [worker] + worker.children(recursive=True)
                    sizes = [_rss(p) for p in tree]
                    self.peak_worker_rss = max(self.peak_worker_rss, sum(sizes))
                    self.peak_process_rss = max(self.peak_process_rss, *sizes)
                    if tick % 5 == 0:    # reading smaps costs more: once a second
                        self.peak_worker_pss = max(self.peak_worker_pss, sum(_pss(p) for p in tree))
                for proc in [root] + root.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        times = proc.cpu_times()
                        self.cpu_by_process[(proc.pid, proc.create_time())] = times.user + times.system
            except psutil.Error:
                pass


def _rss(proc: psutil.Process) -> int:
    try:
        return proc.memory_info().rss
    except psutil.Error:
        return 0


def _pss(proc: psutil.Process) -> int:
    """Proportional set size: a page the kernel and the scoring process share (TensorFlow's
    libraries) counts half in each, where the sum of RSS counts it twice."""
    try:
        return proc.memory_full_info().pss
    except (psutil.Error, AttributeError):
        return 0


def grade(paths: list[Path], out: Path, workers: int, accelerate: bool, code: Path = ROOT) -> Measured:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "autograder", "grade", *map(str, paths), "--out", str(out), "--workers", str(workers)]
    # The package of ``code`` in every process (the scoring process too, whose working directory is
    # elsewhere, would otherwise import this checkout's, installed in the venv); one MNIST cache for both.
    env = dict(os.environ, AUTOGRADER_CACHE=str(ROOT / ".cache"), PYTHONPATH=str(code))
    return Measured(cmd + ([] if accelerate else ["--no-accelerate"]), cwd=code, env=env)


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path | None]:
    """A detached git worktree of ``rev`` (None, said, when git or the history cannot give it)."""
    where = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    proc = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(where), rev],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"\nbaseline {rev[:10]} not measured: {proc.stderr.strip()[-300:]}", flush=True)
        shutil.rmtree(where, ignore_errors=True)
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


def floor(out: Path) -> Measured:
    from autograder.core.mnist_data import ensure_mnist

    work = out / "floor"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return Measured([sys.executable, "-c", FLOOR, str(CORPUS / "solution.ipynb"), str(ensure_mnist()), str(work)])


def stages(out: Path) -> dict[str, float]:
    return json.loads((out / "solution" / "timings.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-out")
    parser.add_argument("--batch", type=int, default=8, help="notebooks in the class batch (at most %d)" % len(CLASS))
    parser.add_argument("--baseline", default=BASELINE, help="git revision graded for comparison ('' for none)")
    parser.add_argument("--pairs", type=int, default=2, help="2-worker runs of today's code and the baseline's, "
                        "alternated (default 2)")
    args = parser.parse_args(argv)
    out = (ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB, load average {os.getloadavg()[0]:.2f}", flush=True)
    figures: dict[str, dict] = {}
    record_memo()
    base = floor(out)
    figures["floor: plain nbclient run of the solution"] = {"wall_s": base.wall, "cpu_s": base.cpu}
    print(f"\nfloor (plain nbclient run of the solution's cells): wall {base.wall:.1f} s, CPU {base.cpu:.1f} s",
          flush=True)
    single = [CORPUS / "solution.ipynb"]
    for accelerate in (True, False):
        label = "grade 1 submission" + ("" if accelerate else " --no-accelerate")
        m = grade(single, out / ("one" if accelerate else "one-plain"), 1, accelerate)
        figures[label] = {"wall_s": m.wall, "cpu_s": m.cpu, **_memory(m),
                          "stages_s": stages(out / ("one" if accelerate else "one-plain"))}
        _print(label, figures[label], base)
        if accelerate:
            figures[label]["sandbox"] = _isolation(out / "one")
    batch = [CORPUS / f"{name}.ipynb" for name in CLASS[:args.batch]]
    measured = {}
    for workers, accelerate in ((1, True), (2, True), (2, False)):
        label = f"class of {len(batch)}, {workers} worker(s)" + ("" if accelerate else " --no-accelerate")
        m = measured[workers, accelerate] = grade(batch, out / f"class-{workers}-{int(accelerate)}", workers,
                                                  accelerate)
        figures[label] = {"wall_s": m.wall, "cpu_s": m.cpu, **_memory(m),
                          "per_hour": 3600 * len(batch) / m.wall, "cpu_per_submission_s": m.cpu / len(batch)}
        _print(label, figures[label], base, per=len(batch))
    figures.update(feedback_pages(out / "class-2-1"))
    figures.update(rescoring(out / "class-2-1", len(batch), measured[2, True]))
    if args.baseline and args.pairs > 0:
        figures.update(baseline(args.baseline, batch, out, base, measured[2, True], args.pairs))
    (out / "bench.json").write_text(json.dumps(figures, indent=1))
    print(f"figures written to {out / 'bench.json'}")
    append_results(RESULTS, figures)
    print(f"a dated row appended to {RESULTS.relative_to(ROOT)}")
    return 0


RESULTS = ROOT / "benchmarks" / "RESULTS.md"
ROW_FIGURES = ("wall_s", "cpu_s", "cpu_per_submission_s", "per_hour", "peak_worker_pss_gb", "peak_process_rss_gb")


def results_row(figures: dict[str, dict], when: str, commit: str, machine: str) -> str:
    """One run of make bench as RESULTS.md records it: when, which code, which machine, then each figure."""
    lines = [f"\n## {when} — make bench of {commit} ({machine})\n", "| measured | " + " | ".join(ROW_FIGURES) + " |",
             "| --- |" + " --- |" * len(ROW_FIGURES)]
    for label, figure in figures.items():
        cells = [f"{figure[k]:.2f}" if isinstance(figure.get(k), (int, float)) else "" for k in ROW_FIGURES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def append_results(path: Path, figures: dict[str, dict]) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "an uncommitted tree"
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(results_row(figures, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit, machine))


def baseline(rev: str, batch: list[Path], out: Path, base: Measured, accelerated: Measured,
             pairs: int) -> dict[str, dict]:
    """The 2-worker class graded by ``rev``'s code, alternating with today's ``pairs`` times (the first of
    today's runs is the class already measured): the ratios are judged on the sums, so that one noisy run
    (the machine's speed drifts within minutes) weighs less."""
    ours, theirs = [accelerated], []
    with checkout(rev) as code:
        if code is None:
            return {}
        for i in range(pairs):
            if i:
                ours.append(grade(batch, out / f"class-2-1-again-{i}", 2, True))
            theirs.append(grade(batch, out / f"class-2-baseline-{i}", 2, True, code=code))
    n = len(batch)
    for i, (now, then) in enumerate(zip(ours, theirs)):
        print(f"\npair {i + 1}: today's {now.wall:.1f} s, {now.cpu / n:.1f} CPU-s per submission; "
              f"{rev[:10]}'s {then.wall:.1f} s, {then.cpu / n:.1f}: {then.wall / now.wall:.2f}x the throughput, "
              f"{now.cpu / then.cpu:.2f}x the CPU", flush=True)
    wall, cpu = sum(m.wall for m in theirs), sum(m.cpu for m in theirs)
    label = f"class of {n}, 2 worker(s), code of {rev[:10]}"
    figure = {"wall_s": wall / pairs, "cpu_s": cpu / pairs, **_memory(max(theirs, key=lambda m: m.peak_worker_rss)),
              "per_hour": 3600 * n * pairs / wall, "cpu_per_submission_s": cpu / pairs / n,
              "pairs": [{"today": [a.wall, a.cpu], "baseline": [b.wall, b.cpu]} for a, b in zip(ours, theirs)]}
    _print(label + f" (mean of {pairs})", figure, base, per=n)
    differ = sorted({p.stem for i in range(pairs) for p in batch
                     if _score(out / f"class-2-baseline-{i}", p.stem) != _score(out / "class-2-1", p.stem)})
    if differ:     # a baseline that fails to grade (or grades otherwise) is no measure of today's cost
        print(f"  NOT COMPARABLE: scores differ from today's for {', '.join(differ)}", flush=True)
        figure["scores_differ"] = differ
    print(f"  2 workers now, over the {pairs} pairs: {wall / sum(m.wall for m in ours):.2f}x its throughput, "
          f"{sum(m.cpu for m in ours) / cpu:.2f}x its CPU", flush=True)
    return {label: figure}


def feedback_pages(graded: Path) -> dict[str, dict]:
    """What each student's feedback page costs: the CPU of rendering it again from its results.json (the pictures
    included), in this process, and its size."""
    from autograder.pipeline.report import read_report
    from autograder.core.config import load_config
    from autograder.core.mnist_data import ensure_mnist, shared_mnist
    from autograder.pipeline.feedback import render_feedback

    config, mnist = load_config(), shared_mnist(ensure_mnist().parent)
    render_feedback(config, read_report(graded / "solution", config), mnist)      # imports and templates, once
    cpu, size = [], []
    for results in sorted(graded.glob("*/results.json")):
        report = read_report(results.parent, config)
        started = time.process_time()
        page = render_feedback(config, report, mnist)
        cpu.append(time.process_time() - started)
        size.append(len(page.encode()))
    print(f"\nfeedback page, {len(cpu)} submissions: CPU mean {sum(cpu) / len(cpu):.3f} s, max {max(cpu):.3f} s; "
          f"size mean {sum(size) / len(size) / 1000:.0f} KB, max {max(size) / 1000:.0f} KB", flush=True)
    return {"feedback page (render, per submission)": {"cpu_s": sum(cpu) / len(cpu), "max_cpu_s": max(cpu),
                                                      "max_kb": max(size) / 1000}}


RESCORED_CLASS = 50     # the review issue's class: its goal is a rescore in under a minute, 20x faster than grading


def rescoring(graded: Path, n: int, grading: Measured) -> dict[str, dict]:
    """A class of 50 made of copies of the class just graded with 2 workers, rescored with 2 (`autograder
    rescore`, no kernel: scoring applies the rubric to the artifacts grading stored); the class itself rescored
    under a contamination setting changed (the artifacts computed again from the kept captures); and what the
    kept artifacts weigh."""
    env = dict(os.environ, AUTOGRADER_CACHE=str(ROOT / ".cache"))
    copies = class_of_copies(graded, RESCORED_CLASS)
    stored = Measured([sys.executable, "-m", "autograder", "rescore", str(copies), "--workers", "2"], env=env)
    grading_50 = grading.wall * RESCORED_CLASS / n
    again = Measured([sys.executable, "-m", "autograder", "--config", str(margins_changed(graded.parent)), "rescore",
                      str(graded), "--workers", "2"], env=env)
    kept = sum(p.stat().st_size for p in (graded / ".kept").rglob("*") if p.is_file())
    print(f"\nrescore class of {RESCORED_CLASS} (copies of the {n} graded), 2 workers, from the stored artifacts: "
          f"wall {stored.wall:.1f} s, CPU {stored.cpu:.1f} s: {grading_50 / stored.wall:.0f}x faster than grading "
          f"them (about {grading_50:.0f} s at the rate of the class of {n})"
          f"\nrescore class of {n}, 2 workers, artifacts computed again (a contamination setting changed): "
          f"wall {again.wall:.1f} s, CPU {again.cpu:.1f} s: {grading.wall / again.wall:.1f}x faster than grading it"
          f"\n  kept artifacts: {kept / 2**20:.1f} MB for the class of {n}, {kept / n / 2**20:.1f} MB per submission",
          flush=True)
    return {f"rescore class of {RESCORED_CLASS}, 2 workers, stored artifacts": {
                "wall_s": stored.wall, "cpu_s": stored.cpu, "per_hour": 3600 * RESCORED_CLASS / stored.wall,
                "cpu_per_submission_s": stored.cpu / RESCORED_CLASS, "times_faster_than_grading": grading_50 / stored.wall},
            f"rescore class of {n}, 2 workers, artifacts computed again": {
                "wall_s": again.wall, "cpu_s": again.cpu, "per_hour": 3600 * n / again.wall,
                "cpu_per_submission_s": again.cpu / n, "kept_mb_per_submission": kept / n / 2**20}}


def class_of_copies(graded: Path, size: int) -> Path:
    """A graded folder of ``size`` submissions: the graded class's, then copies of them (hard links)."""
    target = graded.parent / f"{graded.name}-copies-{size}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(graded, target, copy_function=os.link)
    names = sorted(p.name for p in graded.iterdir() if (p / "results.json").is_file())
    for i in range(size - len(names)):
        name = names[i % len(names)]
        shutil.copytree(graded / name, target / f"{name}-copy-{i // len(names) + 1}", copy_function=os.link)
    return target


def margins_changed(where: Path) -> Path:
    """grading.toml with one contamination setting changed (min_rows + 1), notebooks named by absolute path."""
    from autograder.core.config import load_config

    config = load_config()
    text = config.path.read_text(encoding="utf-8")
    for key, path in (("master", config.master), ("student", config.student)):
        text = re.sub(rf'^{key} = ".*"$', f'{key} = "{path}"', text, count=1, flags=re.M)
    text = re.sub(r"^min_rows = (\d+)$", lambda m: f"min_rows = {int(m.group(1)) + 1}", text, count=1, flags=re.M)
    path = where / "grading-margins.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _score(out: Path, name: str) -> float | None:
    results = out / name / "results.json"
    return json.loads(results.read_text()).get("score") if results.exists() else None


def _isolation(out: Path) -> dict:
    """How the kernels ran: an accelerated figure without the fork server (no bubblewrap, say) is not
    what this code costs where it can fork its kernels, and must not pass for it."""
    from autograder.runner.sandbox import describe_isolation

    sandbox = json.loads((out / "solution" / "results.json").read_text())["extra_data"].get("sandbox") or {}
    print(f"  {describe_isolation(sandbox)}")
    if not sandbox.get("forked"):
        print("  WARNING: the kernels were launched, not forked from a fork server (`autograder doctor` says "
              "why): these figures are not what this code costs where it forks them", flush=True)
    return sandbox


def _memory(m: Measured) -> dict[str, float]:
    return {"peak_worker_rss_gb": m.peak_worker_rss / GB, "peak_worker_pss_gb": m.peak_worker_pss / GB,
            "peak_process_rss_gb": m.peak_process_rss / GB}


def record_memo() -> None:
    """The instructor cells' recording is made once per machine and template (pipeline/memo.py),
    here before anything is timed, so that every figure is what each submission costs."""
    import nbformat

    from autograder.core.config import load_config
    from autograder.core.mnist_data import ensure_mnist
    from autograder.pipeline.memo import prefix_memo

    started = time.monotonic()
    config = load_config()
    memo = prefix_memo(config, nbformat.read(config.student, as_version=4), ensure_mnist())
    cells = ", ".join(sorted(k.split(":")[0] for k in memo.cells)) if memo else "none"
    print(f"instructor cells replayed: {cells} (recording ready in {time.monotonic() - started:.1f} s)", flush=True)


def _print(label: str, f: dict, base: Measured, per: int = 1) -> None:
    print(f"\n{label}: wall {f['wall_s']:.1f} s ({f['wall_s'] / per / base.wall:.2f}x floor per submission), "
          f"CPU {f['cpu_s']:.1f} s ({f['cpu_s'] / per / base.cpu:.2f}x floor per submission), "
          f"peak RSS per worker {f['peak_worker_rss_gb']:.2f} GB (PSS {f['peak_worker_pss_gb']:.2f} GB, "
          f"largest process {f['peak_process_rss_gb']:.2f} GB)", flush=True)
    if "per_hour" in f:
        print(f"  throughput {f['per_hour']:.0f} submissions/hour")
    for stage, seconds in f.get("stages_s", {}).items():
        print(f"  {stage:<18} {seconds:6.1f} s")


if __name__ == "__main__":
    sys.exit(main())
