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
from ..core.modules import import_order, module_file
from ..core.versions import supported_versions
from ..notebook.plan import RUNTIME_PACKAGE, runtime_modules, runtime_name

SCRIPT_NAME = "verifier.py"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
ENTRY = "student.selfcheck"       # what verifier.py runs
CHECKS = "rubric.checks"          # bundled without its hidden-only functions
PLAN = "notebook.plan"            # the plan ships the kernel runtime's sources into the kernel


def bundled_modules(entry: str = ENTRY) -> list[str]:
    """The kernel runtime's modules (the plan ships them into the kernel), then the entry and every module it
    imports at module level, transitively, dependencies first: the bundle follows the package's structure,
    nothing is listed by hand."""
    return import_order(PACKAGE_DIR, [RUNTIME_PACKAGE, entry])


def _source(name: str) -> str:
    return module_file(PACKAGE_DIR, name).read_text(encoding="utf-8")


def public_checks_source(config: Config) -> str:
    """checks.py without the functions only hidden checks use."""
    public = {c.function for c in config.public().checks}
    tree = ast.parse(_source(CHECKS))
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
    modules = bundled_modules()
    sources = {name: (public_checks_source(config) if name == CHECKS else _source(name)) for name in modules}
    packages = [name for name in modules if module_file(PACKAGE_DIR, name).name == "__init__.py"]
    # plan.runtime_sources, from the bundled sources: (name in the runtime package, bundled module).
    runtime = [(runtime_name(name), name) for name in runtime_modules()]
    title = nbformat.read(config.student, as_version=4).cells[0].source.lstrip("# ").strip()
    versions = supported_versions()
    return python_template("verifier.py.j2").render(
        title=title, notebook=config.student.name, sources=sources, packages=packages, entry=ENTRY, plan=PLAN,
        runtime=runtime, settings=repr(json.dumps(settings(config), ensure_ascii=False)), versions=versions,
        tested_with=repr(json.dumps(versions.to_dict())))
