"""What the scoring process measured of a question, for the reports (results.json, feedback.html, the class
report): typed, from the question's artifacts and the genuine test labels."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from ..core.results import (FitMeasurement, GeneralizationMeasurement, LayerMeasurement, ModelMeasurement,
                            QuestionMeasurement)
from .artifacts import QuestionArtifacts

MISTAKES = 12     # test images the model got wrong, shown on the feedback page


def measured(art: QuestionArtifacts, truth: np.ndarray) -> QuestionMeasurement:
    """What the grader measured of one question, for the reports."""
    general, model = art.generalization, art.model
    predicted = art.predicted      # digits only: a model with other outputs has no confusion matrix
    confusion, mistakes = _confusion(predicted, truth) if predicted is not None and predicted.max() < 10 else ((), ())
    return QuestionMeasurement(
        accuracy=art.accuracy, test_inputs=art.test_inputs, note=art.accuracy_note or art.model_error,
        fits=tuple(FitMeasurement(f.question, f.batch_size, f.epochs, f.via, f.samples, f.test_rows, f.unreadable,
                                  f.history) for f in art.fits),
        unaccounted=tuple(art.unaccounted), model_refused=art.model_error if art.model_refused else None,
        generalization=general and GeneralizationMeasurement(**asdict(general), ratio=round(general.ratio, 4)),
        model=model and ModelMeasurement(tuple(LayerMeasurement(layer.class_name, layer.units, layer.activation)
                                               for layer in model.layers), model.output_units, model.params),
        confusion=confusion, mistakes=mistakes)


def _confusion(predicted: np.ndarray, truth: np.ndarray):
    """The confusion matrix (rows: true digit), and a dozen test images the model got wrong: one of each of
    its most frequent confusions first, then the first others."""
    matrix = np.bincount(truth.astype(np.int64) * 10 + predicted, minlength=100).reshape(10, 10)
    wrong = np.flatnonzero(predicted != truth)
    first = {}
    for i in wrong:
        first.setdefault((int(truth[i]), int(predicted[i])), int(i))
    pairs = sorted(first, key=lambda pair: (-matrix[pair], pair))
    chosen = [first[pair] for pair in pairs[:MISTAKES]]
    taken = set(chosen)
    chosen += [int(i) for i in wrong[:2 * MISTAKES] if int(i) not in taken][:MISTAKES - len(chosen)]
    return (tuple(tuple(int(n) for n in row) for row in matrix),
            tuple((i, int(truth[i]), int(predicted[i])) for i in chosen))
