"""Release's public check script: `verifier.py`, written next to the student notebook.

It bundles the grader's own modules (mapping, instrument, kernel recorder, artifacts,
the rubric's check functions, the standalone runner of ``public_check``) with the
public part of the rubric and the released notebook.  Hidden material is left out by
construction: checks whose every use in grading.toml is hidden are removed from the
bundled checks module, and no threshold, master notebook or hidden check is embedded.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat

from ..core.codegen import python_template
from ..core.config import Config
from ..core.versions import supported_versions

SCRIPT_NAME = "verifier.py"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
ENTRY = "student.selfcheck"       # what verifier.py runs
CHECKS = "rubric.checks"          # bundled without its hidden-only functions
PLAN, RUNTIME = "notebook.plan", "kernel.runtime"   # the plan ships the runtime's source into the kernel


def _module_imports(name: str) -> list[str]:
    """The package modules ``name`` imports at module level (relative imports: the package's own)."""
    tree = ast.parse((PACKAGE_DIR / (name.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
    package = name.split(".")[:-1]
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = base + (node.module.split(".") if node.module else [])
            for alias in node.names:   # `from ..rubric import checks` names a module
                dotted = ".".join(target + [alias.name])
                found.append(dotted if (PACKAGE_DIR / (dotted.replace(".", "/") + ".py")).exists() else ".".join(target))
    return found


def bundled_modules(entry: str = ENTRY) -> list[str]:
    """The entry and every module it imports at module level, transitively, dependencies first:
    the bundle follows the package's structure, nothing is listed by hand."""
    order: list[str] = []

    def visit(name: str, path: tuple) -> None:
        if name in order:
            return
        if name in path:
            raise ValueError(f"import cycle: {' -> '.join(path + (name,))}")
        for dep in _module_imports(name):
            visit(dep, path + (name,))
        order.append(name)

    visit(entry, ())
    return order


def public_checks_source(config: Config) -> str:
    """checks.py without the functions only hidden checks use."""
    public = {c.function for c in config.public().checks}
    tree = ast.parse((PACKAGE_DIR / (CHECKS.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
    hidden = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
              and node.name in {c.function for c in config.checks} - public}
    body = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in hidden:
            continue
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "CHECKS" for t in node.targets):
            node = ast.parse("CHECKS = {f.__name__: f for f in (%s,)}" % ", ".join(sorted(public))).body[0]
        body.append(node)
    tree.body = body
    source = ast.unparse(tree) + "\n"
    leaked = hidden & {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
    if leaked:
        raise ValueError(f"public checks still use hidden-only functions: {sorted(leaked)}")
    return source


def settings(config: Config) -> dict:
    public = config.public()
    return {
        "questions": [{"id": q.id, "title": q.title, "checks": [
            {"question": c.question, "number": c.number, "function": c.function,
             "description": c.description, "params": c.params}
            for c in q.checks]} for q in public.questions],
        "template": nbformat.read(config.student, as_version=4),
        "placeholder": config.placeholder,
        "seed": config.limits.seed,
        "threads": config.limits.threads,
        "cell_timeout": config.limits.cell_timeout,
    }


def render_script(config: Config) -> str:
    sources = {name: (public_checks_source(config) if name == CHECKS else
                      (PACKAGE_DIR / (name.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
               for name in bundled_modules()}
    title = nbformat.read(config.student, as_version=4).cells[0].source.lstrip("# ").strip()
    versions = supported_versions()
    return python_template("verifier.py.j2").render(
        title=title, notebook=config.student.name, sources=sources, entry=ENTRY, plan=PLAN, runtime=RUNTIME,
        settings=repr(json.dumps(settings(config), ensure_ascii=False)), versions=versions,
        tested_with=repr(json.dumps(versions.to_dict())))
