"""Python source generated from templates/: the otter test files and the public check script."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def python_template(name: str) -> Template:
    """A template of templates/ whose ``pyrepr`` filter writes values as Python literals."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                      keep_trailing_newline=True)
    env.filters["pyrepr"] = repr
    return env.get_template(name)
