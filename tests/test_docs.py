"""The documentation: the site builds strictly (no broken link or missing page), the README stays a short user
manual, and the version the CLI reports is the package's and the changelog's."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from autograder.cli.main import main
from tests.conftest import ROOT

MKDOCS = Path(sys.executable).parent / "mkdocs"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_site_builds_strictly_with_every_page(tmp_path):
    proc = subprocess.run([str(MKDOCS), "build", "--strict", "--site-dir", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for page in ("instructors", "students", "otter", "cluster", "security", "rubric", "architecture",
                 "performance", "contributing", "changelog"):
        assert (tmp_path / page / "index.html").is_file(), page
    # SECURITY.md and CHANGELOG.md stay at the root; the site includes them.
    assert "Security model of the grader" in (tmp_path / "security" / "index.html").read_text()
    assert f"[{VERSION}]" in (tmp_path / "changelog" / "index.html").read_text()
    assert "Vérifier son notebook" in (tmp_path / "students" / "index.html").read_text()


def test_the_readme_is_a_short_user_manual():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert not re.search(r"\b[0-9a-f]{7,40}\b", readme), "commit hashes belong in benchmarks/RESULTS.md"
    for command in ("make demo", "make test", "autograder grade", "autograder check", "export otter", "--scheduler"):
        assert command in readme, command


def test_version_is_the_packages_and_the_changelogs(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"autograder {VERSION}"
    assert f"## [{VERSION}]" in (ROOT / "CHANGELOG.md").read_text()


def test_make_bench_appends_a_dated_row_and_keeps_the_history(tmp_path):
    from benchmarks.bench import append_results

    results = tmp_path / "RESULTS.md"
    results.write_text("# Measurement history\n\nolder runs\n")
    append_results(results, {"grade 1 submission": {"wall_s": 41.234, "cpu_s": 30.5, "peak_worker_pss_gb": 1.44},
                             "class of 8, 2 worker(s)": {"wall_s": 120.0, "per_hour": 240.0}})
    text = results.read_text()
    assert text.startswith("# Measurement history\n\nolder runs\n")
    assert re.search(r"\n## \d{4}-\d\d-\d\d \d\d:\d\d UTC — make bench of \w+ \(", text)
    assert "| grade 1 submission | 41.23 | 30.50 |  |  | 1.44 |  |" in text
    assert "| class of 8, 2 worker(s) | 120.00 |  |  | 240.00 |  |  |" in text
