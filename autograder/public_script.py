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

from .codegen import python_template
from .config import Config

SCRIPT_NAME = "verifier.py"
PACKAGE_DIR = Path(__file__).parent
# Dependency order: each module's relative imports are already loaded when it runs.
BUNDLED = ("config", "mnist_data", "inputs", "kernel_runtime", "artifacts", "checks", "mapping", "instrument",
           "load", "public_check")


def public_checks_source(config: Config) -> str:
    """checks.py without the functions only hidden checks use."""
    public = {c.function for c in config.public().checks}
    tree = ast.parse((PACKAGE_DIR / "checks.py").read_text(encoding="utf-8"))
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
    sources = {name: (public_checks_source(config) if name == "checks" else
                      (PACKAGE_DIR / f"{name}.py").read_text(encoding="utf-8")) for name in BUNDLED}
    title = nbformat.read(config.student, as_version=4).cells[0].source.lstrip("# ").strip()
    return python_template("verifier.py.j2").render(
        title=title, notebook=config.student.name, sources=sources,
        settings=repr(json.dumps(settings(config), ensure_ascii=False)))
