"""Each question's artifacts as JSON, written by the scoring process that computed them from a capture.

A rescore under a rubric that reads the same artifacts (only points, thresholds or other check parameters
changed) gives them back to the scoring process, which applies the checks without loading a model or
searching the training data again: what the artifacts hold are plain values, read as JSON (never code),
and the same values the checks read when they were computed, digit for digit.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np

from .artifacts import FitCall, Layer, ModelInfo, Prediction, QuestionArtifacts
from .evaluation import Generalization

FORMAT = 1


def dumps(arts: dict[str, QuestionArtifacts]) -> str:
    return json.dumps({"format": FORMAT, "questions": {q: _to_dict(a) for q, a in arts.items()}},
                      ensure_ascii=False, default=_plain)


def loads(text: str) -> dict[str, QuestionArtifacts]:
    data = json.loads(text)
    if data.get("format") != FORMAT:
        raise ValueError(f"stored artifacts of format {data.get('format')!r}, not {FORMAT}")
    return {q: _from_dict(a) for q, a in data["questions"].items()}


def _to_dict(art: QuestionArtifacts) -> dict:
    data = asdict(art)
    if art.predicted is not None:
        data["predicted"] = {"dtype": art.predicted.dtype.str, "values": art.predicted.tolist()}
    return data


def _from_dict(data: dict) -> QuestionArtifacts:
    model, general, predicted = data.pop("model"), data.pop("generalization"), data.pop("predicted")
    return QuestionArtifacts(
        **{k: v for k, v in data.items() if k not in ("fits", "predictions")},
        model=model and ModelInfo(tuple(Layer(**layer) for layer in model["layers"]), model["output_units"],
                                  model["params"]),
        fits=[FitCall(**f) for f in data["fits"]],
        predictions=[Prediction(**p) for p in data["predictions"]],
        generalization=general and Generalization(**general),
        predicted=None if predicted is None else np.asarray(predicted["values"], dtype=predicted["dtype"]))


def _plain(value):
    """numpy scalars as the Python numbers they hold (exactly: ``item()``)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not stored")
