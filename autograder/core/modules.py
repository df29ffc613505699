"""The package's own modules read as source: what each imports of the package, and an order in which
each comes after those it imports.  What is shipped as source follows them, nothing listed by hand:
the kernel runtime's modules (notebook/plan.py) and the modules verifier.py bundles (student/bundle.py).

Names are dotted and relative to a root folder (``kernel.runtime.state`` under autograder/); a
package's name stands for its ``__init__.py``.  Only module-level relative imports count.
"""

from __future__ import annotations

import ast
from pathlib import Path


def module_file(root: Path, name: str) -> Path:
    """The file of module ``name``: its .py, or its __init__.py when it is a package."""
    path = root.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _is_module(root: Path, name: str) -> bool:
    return module_file(root, name).is_file()


def module_imports(root: Path, name: str) -> list[str]:
    """The modules under ``root`` that ``name`` imports at module level (its relative imports), in order."""
    path = module_file(root, name)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = base + (node.module.split(".") if node.module else [])
            for alias in node.names:   # `from ..rubric import checks` names a module
                dotted = ".".join(target + [alias.name])
                found.append(dotted if _is_module(root, dotted) else ".".join(target))
    return found


def import_order(root: Path, entries: list[str]) -> list[str]:
    """The entries and every module they import, transitively, each after those it imports (the entries'
    own order kept where the imports allow it).  An import cycle raises ValueError."""
    order: list[str] = []

    def visit(name: str, path: tuple) -> None:
        if name in order:
            return
        if name in path:
            raise ValueError(f"import cycle: {' -> '.join(path + (name,))}")
        for dep in module_imports(root, name):
            visit(dep, path + (name,))
        order.append(name)

    for entry in entries:
        visit(entry, ())
    return order
