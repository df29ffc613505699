"""Calibrate [class_report.copies] in grading.toml: how much own code answers written apart share.

    .venv/bin/python tools/calibrate_copies.py

The population is every pair of honest answers written independently that the project holds: the class of
tests/test_class_report.py (its disguised copy left out) and the corpus's legitimate variants.  Prints, per
pair, the shares of each one's own code found in the other's and the length they share (normalised
characters), and the largest length among pairs whose whole answers match (both shares >= whole_share),
which min_whole_overlap must exceed.
"""

from __future__ import annotations

import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nbformat  # noqa: E402


def population(config):
    from autograder.classwide.similarity import reference_hashes, student_code
    from tests import test_class_report as klass
    from tests.conftest import CORPUS

    template = nbformat.read(config.student, as_version=4)
    settings, boilerplate = config.class_report.copies, reference_hashes(config)
    notebooks = {name: nb for name, nb in klass.CLASS.items() if name != "bob"}      # bob copied alice
    for path in sorted(CORPUS.glob("*.ipynb")):
        if path.stem.startswith(("variant_", "honest_", "exploratory")):
            notebooks[path.stem] = nbformat.read(path, as_version=4)
    codes = [student_code(name, nb, template, settings=settings, boilerplate=boilerplate)   # cells mapped as graded
             for name, nb in notebooks.items()]
    return [c for c in codes if c.cells]


def main() -> int:
    from autograder.core.config import load_config
    from autograder.classwide import similarity

    config = load_config()
    settings = config.class_report.copies
    codes = population(config)
    reference = similarity.reference_hashes(config)
    prints = {c.submission: similarity._fingerprint(c.text, settings, list(reference)) for c in codes}
    boilerplate = list(reference | similarity._common(prints, settings))
    prints = {c.submission: similarity._fingerprint(c.text, settings, boilerplate) for c in codes}
    whole = []
    for a, b in itertools.combinations(codes, 2):
        pair = similarity._compare(a, b, prints[a.submission], prints[b.submission])
        if pair is None:
            continue
        print(f"{a.submission:34s} {b.submission:34s} shares {pair.share_a:.2f} / {pair.share_b:.2f}, "
              f"{pair.overlap} characters")
        if min(pair.share_a, pair.share_b) >= settings.whole_share:
            whole.append(pair.overlap)
    print(f"\n{len(codes)} answers written apart; pairs sharing whole answers (both >= {settings.whole_share}): "
          f"{len(whole)}, longest {max(whole, default=0)} characters (min_whole_overlap = {settings.min_whole_overlap})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
