"""What this package is tested with: the Python versions pyproject.toml admits and the Keras and TensorFlow
the lock pins.  Read from the checkout at release and export time, and stated in verifier.py and the otter zip."""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import PROJECT_ROOT


@dataclass(frozen=True)
class SupportedVersions:
    python: tuple[tuple[int, int], tuple[int, int]]    # lowest and highest supported minor version, inclusive
    keras: str
    tensorflow: str

    def python_range(self) -> str:
        (a, b), (c, d) = self.python
        return f"{a}.{b}" if (a, b) == (c, d) else f"{a}.{b}-{c}.{d}"

    def to_dict(self) -> dict:
        return {**asdict(self), "python": [list(v) for v in self.python], "python_range": self.python_range()}


def python_bounds(requires_python: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """``>=3.11,<3.14`` -> ((3, 11), (3, 13)): the form pyproject.toml uses, anything else is refused."""
    match = re.fullmatch(r"\s*>=\s*(\d+)\.(\d+)\s*,\s*<\s*(\d+)\.(\d+)\s*", requires_python)
    if not match:
        raise ValueError(f"requires-python must read '>=X.Y,<X.Z', not {requires_python!r}")
    a, b, c, d = map(int, match.groups())
    return (a, b), (c, d - 1)


def pinned(requirements: str, *names: str) -> str:
    """The version requirements.txt pins for the first of ``names`` it holds."""
    for name in names:
        found = re.search(rf"^{re.escape(name)}==([^\s;]+)", requirements, re.M)
        if found:
            return found.group(1)
    raise ValueError(f"requirements.txt pins none of {names}")


def supported_versions(root: Path = PROJECT_ROOT) -> SupportedVersions:
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = (root / "requirements.txt").read_text(encoding="utf-8")
    return SupportedVersions(python=python_bounds(project["requires-python"]), keras=pinned(requirements, "keras"),
                      tensorflow=pinned(requirements, "tensorflow-cpu", "tensorflow"))
