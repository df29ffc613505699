"""Keep: what a submission's scoring read, kept in the output folder so `autograder rescore` can score it
again under a changed rubric without starting a kernel.

Each submission's ``kept.json`` lists its capture's files and arrays by content; the bytes live once per
class in ``DIR/.kept/``, zlib-compressed and named by their SHA-256 (honest students' training
fingerprints, and a submission's own repeated arrays, are the same bytes).  ``inputs.npz`` is kept array by
array, so an array shared by two captures is stored once; restoring writes the capture back as the
scoring process reads it.  The kept capture is tied to the kernel runtime that wrote it: a runtime that
captures something else needs a regrade (``KeptCapture.runtime``).

What the scoring process computed from the capture (each question's artifacts, rubric/stored.py) is kept
too, under a key naming everything it depends on (``KeptCapture.scored_key``): a rescore that changes only
points, thresholds or check parameters gives it back to the scoring process, which then loads no model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..core.config import Config
from ..core.files import tree_digest, write_atomic
from ..kernel.runtime.format import INPUTS_FILE
from ..notebook.plan import runtime_sources

KEPT_FILE = "kept.json"       # in each submission's folder
STORE = ".kept"               # in the class output folder
PACKAGE = Path(__file__).resolve().parents[1]    # the grader's code, which computed the stored artifacts
DAMAGED = (OSError, ValueError, zlib.error)      # what reading a lost or damaged object raises
LEVEL = 1                     # zlib: the arrays are mostly zeros or random floats; more effort buys little


@functools.cache
def runtime_digest() -> str:
    """What the kept captures depend on: the kernel runtime's sources."""
    return hashlib.sha256(json.dumps(runtime_sources()).encode()).hexdigest()[:24]


@functools.cache
def _code_digest() -> str:
    return tree_digest(PACKAGE)


@dataclass(frozen=True)
class KeptCapture:
    runtime: str                                 # runtime_digest() of the runtime that captured
    failed: dict[str, str]                       # question -> why it was not graded (the scoring's input)
    files: dict[str, str] = field(default_factory=dict)     # capture-relative path -> object
    arrays: dict[str, dict] = field(default_factory=dict)   # question -> name -> {object, dtype, shape}
    scored: dict[str, str] = field(default_factory=dict)    # {key: scored_key(), object}: the artifacts scoring
    #                                                         computed from this capture (rubric/stored.py)

    def scored_key(self, config: Config) -> str:
        """What the stored artifacts depend on: this capture, the rubric's questions and contamination
        settings (what load_question reads of it), and the grader's code.  Points, thresholds and other
        check parameters are not in it: the checks apply them to the artifacts."""
        data = {"capture": [self.runtime, self.failed, self.files, self.arrays], "code": _code_digest(),
                "questions": list(config.question_ids), "contamination": asdict(config.contamination)}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]

    def stored_artifacts(self, config: Config, store: Path) -> str | None:
        """The artifacts scoring stored for this capture under ``config``'s settings, if it did."""
        if self.scored.get("key") != self.scored_key(config):
            return None
        try:
            return _get(self.scored["object"], store).decode()
        except DAMAGED:      # lost or damaged: scored again from the capture
            return None

    def with_scored(self, config: Config, artifacts: str, store: Path) -> KeptCapture:
        return replace(self, scored={"key": self.scored_key(config),
                                     "object": _put(artifacts.encode(), store, check=True)})

    def write(self, submission_dir: Path) -> None:
        write_atomic(Path(submission_dir) / KEPT_FILE, json.dumps(asdict(self), indent=1, ensure_ascii=False))

    @classmethod
    def read(cls, submission_dir: Path) -> KeptCapture | None:
        try:
            return cls(**json.loads((Path(submission_dir) / KEPT_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def keep(capture: Path, failed: dict[str, str], submission_dir: Path, store: Path, config: Config,
         artifacts: str | None = None) -> KeptCapture:
    """Store the capture's bytes (and what scoring computed from them) in ``store`` and write the
    submission's ``kept.json``."""
    files, arrays = {}, {}
    for path in sorted(p for p in Path(capture).rglob("*") if p.is_file()):
        relative = path.relative_to(capture).as_posix()
        if path.name == INPUTS_FILE:
            with np.load(path, allow_pickle=False) as npz:
                arrays[path.parent.name] = {name: _put_array(npz[name], store) for name in npz.files}
        else:
            files[relative] = _put(path.read_bytes(), store)
    kept = KeptCapture(runtime_digest(), dict(failed), files, arrays)
    if artifacts is not None:
        kept = kept.with_scored(config, artifacts, store)
    kept.write(submission_dir)
    return kept


def restore(kept: KeptCapture, store: Path, capture: Path) -> None:
    """The capture as the kernel wrote it (``inputs.npz`` rebuilt from its arrays), for the scoring process."""
    for relative, name in kept.files.items():
        target = Path(capture) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_get(name, store))
    for question, named in kept.arrays.items():
        (Path(capture) / question).mkdir(parents=True, exist_ok=True)
        np.savez(Path(capture) / question / INPUTS_FILE, **{
            n: np.frombuffer(_get(a["object"], store), dtype=a["dtype"]).reshape(a["shape"]) for n, a in named.items()})


def missing_objects(kept: KeptCapture, store: Path) -> list[str]:
    names = list(kept.files.values()) + [a["object"] for named in kept.arrays.values() for a in named.values()]
    return [n for n in names if not _object_path(n, store).exists()]


def _put_array(array: np.ndarray, store: Path) -> dict:
    array = np.ascontiguousarray(array)
    return {"object": _put(array.tobytes(), store), "dtype": array.dtype.str, "shape": list(array.shape)}


def _put(data: bytes, store: Path, check: bool = False) -> str:
    """Store ``data`` under its name; ``check``: a copy there is read back first (it may be what a rescore found
    damaged)."""
    name = hashlib.sha256(data).hexdigest()
    path = _object_path(name, store)
    if not path.exists() or check and not _intact(name, store):
        write_atomic(path, zlib.compress(data, LEVEL))    # else written by another submission or run: the same bytes
    return name


def _intact(name: str, store: Path) -> bool:
    try:
        _get(name, store)
        return True
    except DAMAGED:
        return False


def _get(name: str, store: Path) -> bytes:
    data = zlib.decompress(_object_path(name, store).read_bytes())
    if hashlib.sha256(data).hexdigest() != name:
        raise ValueError(f"kept object {name} is corrupt")
    return data


def _object_path(name: str, store: Path) -> Path:
    return Path(store) / name[:2] / name
