"""Suspected copies: pairwise similarity of the code each student wrote, by winnowing (copydetect, as MOSS does).

What is compared is each student's own code: their exercise cells and the cells they added, read
from ``executed.ipynb`` (the plan's role of every cell is in its metadata, so ``autograder report``
needs nothing but the output folder). Code that honest students all reproduce weighs nothing:
copydetect normalises the code (names become ``V``/``F``, strings ``S``, comments and spacing go),
every k-gram of the template and of the master's solutions is boilerplate, and so is every
fingerprint found in more than ``common_share`` of the class (MOSS's ``-m``). A cell with too little
code of its own once that is removed is left out, so one-line answers never make a pair.
Renamed variables and rewritten comments change nothing after normalisation; reordered cells
only cut the few k-grams that straddle a cell boundary.

The k-grams are hashed with BLAKE2b, not with copydetect's Python ``hash()``, which is salted per process:
winnowing keeps each window's smallest hash, so with a salted hash the fingerprints, and a pair near a
threshold, changed from one run of the class report to the next.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
from copydetect import compare_files
from copydetect.utils import filter_code, get_token_coverage, highlight_overlap, winnow

from ..core import messages
from ..core.config import Config, Copies
from ..notebook.mapping import map_cells, template_cells
from ..pipeline.report import PLAN_KEY

LANGUAGE = "python"
MARK = ("<mark>", "</mark>")


@dataclass(frozen=True)
class StudentCode:
    submission: str
    cells: tuple[str, ...]          # the cells kept for comparison, each headed by a comment naming it

    @property
    def text(self) -> str:
        return "\n\n".join(self.cells)


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    share_a: float                  # share of a's own code found in b's
    share_b: float
    overlap: int                    # normalised tokens in common
    html_a: str                     # a's code, escaped, the shared parts in <mark>
    html_b: str

    @property
    def score(self) -> float:
        return max(self.share_a, self.share_b)

    def suspect(self, settings: Copies) -> bool:
        """Much of one student's code in the other's, or the whole of both students' code the same: a whole
        short answer copied, which independent students writing apart do not share at that length."""
        return (self.score >= settings.threshold and self.overlap >= settings.min_overlap) or (
            min(self.share_a, self.share_b) >= settings.whole_share and self.overlap >= settings.min_whole_overlap)


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """What copydetect's ``compare_files`` reads of a ``CodeFingerprint``, with hashes that are the same in
    every process."""
    k: int
    filtered_code: str
    offsets: np.ndarray                      # filter_code's: where filtered positions are in the raw code
    hashes: set[int]
    hash_idx: dict[int, list[int]]           # each kept hash -> where its k-grams start in filtered_code
    token_coverage: float


def _hashes(filtered: str, k: int) -> np.ndarray:
    """Each k-gram's hash, in order (signed 64-bit, as copydetect's)."""
    return np.array([int.from_bytes(hashlib.blake2b(filtered[i:i + k].encode(), digest_size=8).digest(), "little",
                                    signed=True) for i in range(len(filtered) - k + 1)], dtype=np.int64)


def _fingerprint(code: str, settings: Copies, boilerplate) -> Fingerprint:
    """copydetect's fingerprinting (``CodeFingerprint``, ``get_document_fingerprints``) with ``_hashes``."""
    filtered, offsets = filter_code(code, "code.py", LANGUAGE)
    k = settings.noise
    hashes, idx = (winnow(_hashes(filtered, k), settings.guarantee - k + 1, remove_duplicates=False)
                   if len(filtered) >= k else (np.array([], dtype=np.int64), np.array([], dtype=int)))
    if len(boilerplate) > 0:
        _, common, _ = np.intersect1d(hashes, boilerplate, return_indices=True, assume_unique=True)
        hashes, idx = np.delete(hashes, common), np.delete(idx, common)
    where: dict[int, list[int]] = {}
    for h, i in zip(hashes.tolist(), idx.tolist()):
        where.setdefault(h, []).append(i)
    return Fingerprint(k, filtered, offsets, set(where), where, float(get_token_coverage(where, k, len(filtered))))


def _kgrams(code: str, k: int) -> tuple[str, list[int]]:
    """The normalised code and the hash of each of its k-grams, in order."""
    filtered, _ = filter_code(code, "code.py", LANGUAGE)
    return filtered, _hashes(filtered, k).tolist() if len(filtered) >= k else []


def own_length(code: str, k: int, reference: set[int]) -> int:
    """Characters of normalised code that no k-gram of the template or the solution covers."""
    filtered, hashes = _kgrams(code, k)
    covered = np.zeros(len(filtered), dtype=bool)
    for start, h in enumerate(hashes):
        if h in reference:
            covered[start:start + k] = True
    return int((~covered).sum())


def reference_hashes(config: Config) -> set[int]:
    """Every k-gram of the code the template gives and of the master's solutions: nobody's own."""
    hashes: set[int] = set()
    for path in (config.student, config.master):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                hashes.update(_kgrams(cell.source, config.class_report.copies.noise)[1])
    return hashes


def _plan(executed: nbformat.NotebookNode, template: nbformat.NotebookNode) -> list[tuple[str, dict]]:
    """(source, role) of every code cell; folders graded before roles were recorded are mapped again."""
    if any(PLAN_KEY in c.metadata for c in executed.cells):
        return [(c.source, c.metadata.get(PLAN_KEY, {})) for c in executed.cells if c.cell_type == "code"]
    planned = map_cells(executed, template_cells(template)).cells
    return [(c.source, {"role": c.role, "question": c.question, "exercise": c.exercise})
            for c in planned if c.cell_type == "code"]


def _label(role: dict) -> str:
    if not role.get("question"):
        return f"# {messages.CELL_LABEL_FREE}"
    kind = messages.CELL_LABEL_EXERCISE if role.get("exercise") else messages.CELL_LABEL_ADDED
    return f"# {role['question']} : {kind}"


def student_code(submission: str, executed: nbformat.NotebookNode, template: nbformat.NotebookNode, *,
                 settings: Copies, boilerplate: set[int]) -> StudentCode:
    """The student's exercise and added cells that hold enough code of their own."""
    kept = []
    for source, role in _plan(executed, template):
        if role.get("role", "instructor") == "instructor" or not source.strip():
            continue
        if own_length(source, settings.noise, boilerplate) >= settings.min_cell:
            kept.append(f"{_label(role)}\n{source.strip()}")
    return StudentCode(submission, tuple(kept))


def class_code(out: Path, submissions: list[str], config: Config) -> list[StudentCode]:
    """Each submission's own code, from ``<out>/<id>/executed.ipynb`` (none for a file that never ran)."""
    template = nbformat.read(config.student, as_version=4)
    boilerplate = reference_hashes(config)
    codes = []
    for sub in submissions:
        path = out / sub / "executed.ipynb"
        if path.is_file():
            codes.append(student_code(sub, nbformat.read(path, as_version=4), template,
                                      settings=config.class_report.copies, boilerplate=boilerplate))
    return codes


def _common(prints: dict[str, Fingerprint], settings: Copies) -> set[int]:
    """Fingerprints in more than ``common_share`` of the class: what everyone writes alike."""
    if len(prints) < settings.common_min_class:
        return set()
    counts = Counter(h for fp in prints.values() for h in fp.hashes)
    limit = max(2, math.floor(settings.common_share * len(prints)))
    return {h for h, n in counts.items() if n > limit}


def suspected_copies(codes: list[StudentCode], config: Config) -> list[Pair]:
    """Pairs whose shared own code passes both the share threshold and the minimum length, highest first."""
    settings = config.class_report.copies
    reference = reference_hashes(config)
    codes = [c for c in codes if c.cells]
    prints = {c.submission: _fingerprint(c.text, settings, list(reference)) for c in codes}
    boilerplate = list(reference | _common(prints, settings))
    prints = {c.submission: _fingerprint(c.text, settings, boilerplate) for c in codes}
    pairs = []
    for i, a in enumerate(codes):
        for b in codes[i + 1:]:
            pair = _compare(a, b, prints[a.submission], prints[b.submission])
            if pair is not None and pair.suspect(settings):
                pairs.append(pair)
    return sorted(pairs, key=lambda p: (-p.score, p.a, p.b))


def _compare(a: StudentCode, b: StudentCode, fa: Fingerprint, fb: Fingerprint) -> Pair | None:
    overlap, (share_a, share_b), (slices_a, slices_b) = compare_files(fa, fb)
    if not overlap:
        return None
    html_a, _ = highlight_overlap(a.text, slices_a, *MARK, escape_html=True)
    html_b, _ = highlight_overlap(b.text, slices_b, *MARK, escape_html=True)
    return Pair(a.submission, b.submission, float(min(share_a, 1.0)), float(min(share_b, 1.0)), int(overlap),
                html_a, html_b)
