"""The layout as code: import contracts, the verifier bundle derived from the package, short functions."""

import ast
import subprocess
import sys
from pathlib import Path

from autograder.core.modules import module_imports
from autograder.notebook.plan import runtime_modules
from autograder.student.bundle import PACKAGE_DIR, bundled_modules

PACKAGE = Path(__file__).resolve().parent.parent / "autograder"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_import_contracts_hold():
    proc = subprocess.run([str(LINT_IMPORTS), "--no-cache"], capture_output=True, text=True,
                          cwd=PACKAGE.parent)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_verifier_bundle_follows_the_package_structure():
    modules = bundled_modules()
    assert modules[-1] == "student.selfcheck"
    assert {"kernel.runtime", "rubric.checks", "rubric.artifacts", "notebook.plan", "core.config"} <= set(modules)
    assert set(runtime_modules()) <= set(modules)        # every module the plan ships into the kernel
    # The grader's runner with its plain launcher; nothing that sandboxes, scores, grades a class,
    # drives otter or prints with rich.
    assert {"runner.execute", "runner.launch", "runner.outputs"} <= set(modules)
    assert "runner.sandbox" not in modules and "runner.scoring" not in modules
    # The grader's own stages, composed for the self-check; not grading's composition nor the memo recording.
    assert "pipeline.stages" in modules and not {"pipeline.grade", "pipeline.memo"} & set(modules)
    assert not [m for m in modules if m.split(".")[0] in ("distribution", "classwide", "interop", "cli")]
    assert "rubric.contamination" not in modules          # grading only, imported lazily there
    for i, name in enumerate(modules):                     # dependencies load first
        assert all(modules.index(dep) < i for dep in module_imports(PACKAGE_DIR, name)), name


def test_no_function_is_longer_than_sixty_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert long == []


def test_a_grading_process_reads_notebooks_without_compiling_jsonschemas_iri_grammars():
    """Each grading process imports nbformat; the optional IRI checker jsonschema would load with it
    compiles 38 lark grammars (about a second of CPU per process), for formats nothing here validates."""
    proc = subprocess.run([sys.executable, "-c", "import sys, autograder.pipeline.grade, nbformat; "
                           "print(sorted(m for m in ('lark', 'rfc3987_syntax', 'nbformat') if sys.modules.get(m)))"],
                          capture_output=True, text=True, cwd=PACKAGE.parent)
    assert proc.stdout.split() == ["['nbformat']"], proc.stderr[-2000:]


def test_no_module_is_longer_than_450_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}
    assert long == {}
