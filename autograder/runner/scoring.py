"""Score: run the hidden pytest suite in a separate, clean process over captured artifacts."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..core import messages
from ..core.config import Config
from ..core.environment import scoring_env
from ..core.files import write_atomic
from ..rubric.checks import failure_message

SUITE = Path(__file__).resolve().parents[1] / "rubric" / "hidden_tests"


@dataclass(frozen=True)
class CheckOutcome:
    number: str
    passed: bool
    message: str         # French, for the student
    internal: str = ""   # English detail when the grader itself failed


class ResultsPlugin:
    """Collects each check's outcome; used inside the scoring process."""

    def __init__(self, path: Path):
        self.path = path
        self.outcomes: dict[str, dict] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.when == "call" or (report.when == "setup" and report.failed):
            number = item.callspec.id if hasattr(item, "callspec") else item.name
            entry = {"passed": report.passed, "message": "", "internal": ""}
            if call.excinfo is not None:
                exc = call.excinfo.value
                entry["message"] = failure_message(exc)
                if not isinstance(exc, AssertionError):
                    entry["internal"] = f"{type(exc).__name__}: {exc}"
            self.outcomes[number] = entry

    def pytest_sessionfinish(self, session):
        write_atomic(self.path, json.dumps(self.outcomes, ensure_ascii=False, indent=1))


@dataclass
class Scores:
    outcomes: dict[str, CheckOutcome]
    measurements: dict          # per question: accuracy measured by the grader, inputs, fits


def score(config: Config, capture_dir: Path, failed: dict[str, str], workdir: Path, *,
          config_path: Path | None = None, public_only: bool = False) -> Scores:
    workdir.mkdir(parents=True, exist_ok=True)
    execution = workdir / "execution.json"
    execution.write_text(json.dumps({"failed": failed}, ensure_ascii=False))
    results = workdir / "checks.json"
    measurements = workdir / "measurements.json"
    cmd = [sys.executable, "-m", "autograder.runner.scoring", str(results), str(SUITE),
           "--capture-dir", str(capture_dir), "--execution", str(execution),
           "--measurements", str(measurements),
           "--grading-config", str(config_path or config.root / "grading.toml")] + \
        (["--public-only"] if public_only else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(workdir), env=scoring_env())
    (workdir / "scoring.log").write_text(proc.stdout[-20000:] + proc.stderr[-20000:])
    raw = json.loads(results.read_text(encoding="utf-8")) if results.exists() else {}
    out = {}
    for check in config.checks:
        entry = raw.get(check.number)
        if entry is None:
            out[check.number] = CheckOutcome(check.number, False, messages.CHECK_NOT_RUN,
                                             f"scoring exited {proc.returncode}; see scoring.log")
        else:
            out[check.number] = CheckOutcome(check.number, bool(entry["passed"]), entry["message"],
                                             entry.get("internal", ""))
    measured = json.loads(measurements.read_text()) if measurements.exists() else {}
    return Scores(out, measured)


def _main(argv: list[str]) -> int:
    results, args = Path(argv[0]), argv[1:]
    return int(pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
                           plugins=[ResultsPlugin(results)]))


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
