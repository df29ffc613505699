"""Calibrate the accuracy thresholds: grade the reference solution over several seeds.

    python -m autograder.cli.calibrate [--seeds 10] [--workers 2] [--margin 0.02]

Prints, for each question, the accuracies the grader measured (min/mean/max) and a
threshold below the minimum by the margin, to be copied beside each threshold in
grading.toml.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..core.config import DEFAULT_CONFIG, LimitOverrides, load_config
from ..pipeline.grade import Job, grade_submission
from ..core.mnist_data import ensure_mnist


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--margin", type=float, default=0.02)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    mnist = ensure_mnist()
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [Job(config.master, f"seed-{s}", Path(tmp) / f"seed-{s}", Path(args.config), mnist,
                    LimitOverrides(seed=s)) for s in range(args.seeds)]
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.workers, mp_context=ctx) as pool:
            reports = list(pool.map(grade_submission, jobs))
    per_question: dict[str, list[float]] = {q: [] for q in config.question_ids}
    for r in reports:
        for q, m in r.measurements.items():
            if m.accuracy is not None:
                per_question[q].append(m.accuracy)
    summary = {}
    for q, values in per_question.items():
        if not values:
            continue
        low = min(values)
        summary[q] = {"seeds": len(values), "min": round(low, 4), "mean": round(statistics.mean(values), 4),
                      "max": round(max(values), 4),
                      "suggested_threshold": math.floor((low - args.margin) * 100) / 100}
    print(json.dumps({"scores": [r.score for r in reports], "accuracy": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
