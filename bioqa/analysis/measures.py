"""The measures the report compares: the keys of ``metrics.json`` that the metric registry of
:mod:`bioqa.evaluation` knows (its spec gives the group, statistic, headline flag, rank and direction); nothing else
in ``bioqa.analysis`` knows measure names.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from bioqa.analysis.model import EXACT_MAX_QUESTIONS
from bioqa.evaluation.registry import MetricSpec, metric_spec, ranking_metrics, registry
from bioqa.evaluation.stats import PairedResult, Resampled, paired_from_resamples, paired_test, resample


def is_measure(key: str, value: Any) -> bool:
    """A registered measure with a number (or ``None``) in ``metrics.json``; every other key is not a measure."""
    return key in registry() and (value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)))


@functools.cache
def _score_inputs() -> dict[str, bool]:
    """Per-question score key -> whether it is a share in [0, 1] (Phase B and ROUGE); Phase A's need only not be
    negative (the jar's average precision is not capped at 1, and 0/0 is NaN)."""
    return {key: spec.phase != "A" for spec in registry().values() for key in spec.inputs}


def bad_score(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be the per-question score ``key`` that a measure is computed from (None when it can,
    or when ``key`` is no measure's input)."""
    share = _score_inputs().get(key)
    if share is None or value is None or isinstance(value, bool):
        return None
    if not isinstance(value, (int, float)):
        return f"{key} is not a number ({value!r})"
    if share and not 0.0 <= value <= 1.0:  # NaN fails too
        return f"{key}={value} is outside [0, 1]"
    if not share and value < 0.0:
        return f"{key}={value} is negative"
    return None


def measure_specs(keys: Iterable[str]) -> list[MetricSpec]:
    """Specs of the registered measures among ``keys`` (metrics.json keys of any number of runs): the ranking ones
    first, in rank order, then the others by name."""
    names = set(keys) & set(registry())
    ranking = [s for s in ranking_metrics() if s.name in names]
    return ranking + [metric_spec(n) for n in sorted(names - {s.name for s in ranking})]


def pooled_value(rows: Sequence[Mapping[str, Any]], name: str) -> tuple[float, int]:
    """The measure over the pooled per-question records (the evaluator's statistic, not a mean of batch means) and
    the number of questions it counts."""
    spec = metric_spec(name)
    return spec.compute(rows), sum(1 for r in rows if spec.member in r)


def resample_measures(
    rows: Sequence[Mapping[str, Any]], names: Iterable[str], n: int, seed: int
) -> dict[str, Resampled]:
    """Each measure's value and bootstrap distribution over ``rows`` (per-question records of any number of
    batches, questions resampled); measures without questions are left out."""
    out = {}
    for name in names:
        resampled = resample(rows, name, n, seed)
        if resampled is not None:
            out[name] = resampled
    return out


def exact_permutation_p(rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]], name: str) -> float:
    """Two-sided exact paired permutation p-value of A − B on the questions both scored (matched by ``index``):
    the share of all 2**n swaps of the n pairs whose difference is at least as far from 0 as the observed one (the
    statistic recomputed on each, so macro F1 is tested as the evaluator computes it). On 3 questions it is never
    below 2/8 = 0.25 — what a sign test on 3 pairs gives. For n <= :data:`EXACT_MAX_QUESTIONS` only."""
    spec = metric_spec(name)
    by_index = {r["index"]: r for r in rows_b if spec.member in r}
    pairs = [(r, by_index[r["index"]]) for r in rows_a if spec.member in r and r["index"] in by_index]
    n = len(pairs)
    if not 0 < n <= EXACT_MAX_QUESTIONS:
        raise ValueError(f"an exact test enumerates 2**n swaps: 0 < n <= {EXACT_MAX_QUESTIONS}, got {n}")
    a = {k: np.asarray([float(p[0][k]) for p in pairs])[None, :] for k in spec.inputs}
    b = {k: np.asarray([float(p[1][k]) for p in pairs])[None, :] for k in spec.inputs}
    observed = float(spec.statistic(a)[0] - spec.statistic(b)[0])
    swap = _swaps(n)
    perm = spec.statistic({k: np.where(swap, b[k], a[k]) for k in a}) - spec.statistic(
        {k: np.where(swap, a[k], b[k]) for k in a}
    )
    return float(np.mean(np.abs(perm) >= abs(observed) - 1e-12))


@functools.lru_cache(maxsize=EXACT_MAX_QUESTIONS)
def _swaps(n: int) -> np.ndarray:
    """Half of the 2**n swap patterns of n pairs: those that keep the first pair (each other one swaps every pair of
    one of these, which only flips the sign of A − B, so the share of |A − B| >= observed is the same)."""
    swap = ((np.arange(2 ** (n - 1))[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)
    swap.flags.writeable = False
    return swap


def paired(a: Resampled, b: Resampled, rows_a, rows_b, name: str, n: int, seed: int) -> PairedResult | None:
    """A − B on the questions both scored: from the two bootstrap distributions when both counted the same
    questions, else the paired bootstrap over the questions they share (``None`` when they share none)."""
    return paired_from_resamples(a, b) or paired_test(rows_a, rows_b, [name], n, seed).get(name)


#: The per-question value that says how well one question of each type was answered (error analysis).
QUESTION_SCORE = {
    "yesno": "yesno.correct",
    "factoid": "factoid.rr",
    "list": "list.f1",
    "summary": "ideal.rouge_su4_f1",
}


def question_score_key(question_type: str) -> str:
    return QUESTION_SCORE.get(question_type, "ideal.rouge_su4_f1")
