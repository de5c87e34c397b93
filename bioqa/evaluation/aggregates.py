"""How per-question values become a set-level number: each aggregate gives a :class:`~bioqa.evaluation.registry.
MetricSpec` its words, its vectorised bootstrap statistic and (for the jar's measures) its exact set-level value.

The exact values use the jar's arithmetic from :mod:`bioqa.evaluation.official` (sequential sums, Java's log and
exp), so ``spec.compute(per_question)`` is the jar's number bit for bit; the statistics are numpy over resamples.

>>> mean("list.f1")["aggregation"]
'mean'
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bioqa.evaluation.official import EPSILON, gmap_snippets, jar_gmap, jar_mean
from bioqa.evaluation.registry import Columns, Statistic, Values


def _mean_statistic(key: str) -> Statistic:
    """Mean per row, a NaN value counting as 0 (the jar's convention)."""

    def stat(c: Columns) -> np.ndarray:
        means = c[key].mean(axis=1)  # the same sums as below when no value is NaN, in a third of the time
        return np.where(np.isnan(c[key]), 0.0, c[key]).mean(axis=1) if np.isnan(means).any() else means

    return stat


def mean(key: str) -> dict[str, Any]:
    """The mean of ``key`` over the counted questions, a NaN value counting as 0."""
    return {"aggregation": "mean", "statistic": _mean_statistic(key), "value": lambda v: jar_mean(v[key], math.nan)}


def gmap(key: str, nan_as_eps: bool) -> dict[str, Any]:
    """GMAP = exp(mean(log(AP + eps))); a NaN AP adds log(eps) (``nan_as_eps``, documents) or makes the jar's value
    NaN (concepts, triples; the resampled statistic counts it as 0)."""
    nan_log = float(np.log(EPSILON)) if nan_as_eps else 0.0

    def stat(c: Columns) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(c[key] + EPSILON)
        return np.exp(np.where(np.isnan(c[key]), nan_log, logs).mean(axis=1))

    return {
        "aggregation": "exp(mean(log(AP + 1e-5)))",
        "statistic": stat,
        "value": lambda v: jar_gmap(v[key], nan_as_eps),
    }


def _gmap_snippets_statistic(c: Columns) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(c["snippets.ap"] + EPSILON)
    total = np.where(np.isnan(c["snippets.ap"]), 0.0, logs).sum(axis=1)
    with np.errstate(over="ignore"):
        value = np.exp(total / c["snippets.ap"].shape[1])
    return np.where(np.isnan(total) | (total == 0), 0.0, value)


def snippet_gmap() -> dict[str, Any]:
    """The jar's snippet GMAP: NaN APs add nothing to the log sum, a log sum of exactly 0 (or NaN) gives 0."""
    return {
        "aggregation": "exp(mean(log(AP + 1e-5)))",
        "statistic": _gmap_snippets_statistic,
        "value": lambda v: gmap_snippets(v["snippets.ap"]),
    }


def _f1_statistic(label: bool) -> Statistic:
    def stat(c: Columns) -> np.ndarray:
        correct = c["yesno.correct"] == 1
        positive = c["yesno.is_yes"] == (1.0 if label else 0.0)
        tp = (correct & positive).sum(axis=1)
        errors = (~correct).sum(axis=1)
        denominator = 2 * tp + errors
        return np.where(denominator == 0, 0.0, 2 * tp / np.maximum(denominator, 1))

    return stat


def _f1_value(v: Values, label: bool) -> float:
    """The jar's F1 of one class: tp, fp (wrong on that class), fn (wrong on the other) in question order."""
    tp = fp = fn = 0
    for correct, is_yes in zip(v["yesno.correct"], v["yesno.is_yes"], strict=True):
        if (is_yes == 1.0) == label:
            if correct == 1:
                tp += 1
            else:
                fp += 1
        elif correct != 1:
            fn += 1
    denominator = 2 * tp + fp + fn
    return 0.0 if denominator == 0 else 2 * tp / denominator


def yesno_f1(label: bool) -> dict[str, Any]:
    """F1 of the yes (or no) class from the confusion counts of the yes/no questions."""
    return {
        "aggregation": f"F1 of {'yes' if label else 'no'!r} from confusion counts",
        "statistic": _f1_statistic(label),
        "value": lambda v: _f1_value(v, label),
    }


def yesno_macro_f1() -> dict[str, Any]:
    """(F1 yes + F1 no) / 2 from the confusion counts."""
    yes, no = _f1_statistic(True), _f1_statistic(False)
    return {
        "aggregation": "(F1 yes + F1 no) / 2 from confusion counts",
        "statistic": lambda c: (yes(c) + no(c)) / 2,
        "value": lambda v: (_f1_value(v, True) + _f1_value(v, False)) / 2,
    }
