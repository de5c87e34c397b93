"""The one place the report learns which measures exist: names, groups, headline flags, direction, statistics.

Derived from the keys of ``metrics.json`` and the metric registry of :mod:`bioqa.evaluation` (its per-question
statistic, group member key, headline flag and direction); nothing else in ``bioqa.analysis`` knows measure names.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bioqa.analysis.model import EXACT_MAX_QUESTIONS
from bioqa.evaluation.registry import iter_metrics, metric_spec
from bioqa.evaluation.stats import PairedResult, Resampled, paired_from_resamples, paired_test, resample

#: BioASQ's ranking measure of each question group (since 9B: snippets MF1, not MAP) and ROUGE-SU4/ROUGE-2 F1, which
#: the paper reports for ideal answers: the report's tables, figures and paired tests use these.
RANKING = (
    "yesno.macro_f1",
    "factoid.mrr",
    "list.f1",
    "ideal.rouge_su4_f1",
    "ideal.rouge2_f1",
    "documents.MAP",
    "snippets.MF1",
)
#: metrics.json keys that are not measures of answer quality.
NOT_MEASURES = (
    "accounting.",
    "run.",
    "phase_a.",
    "errors.",
    "ensemble.",
    "ci",
    "golden",
    "system",
    "phases",
    "version",
    "counts",
    "bootstrap",
)


@dataclass(frozen=True)
class _Definition:
    member: str  # a question counts for the measure when its per-question row has this key
    inputs: tuple[str, ...]
    statistic: Callable[[dict[str, np.ndarray]], np.ndarray]
    headline: bool
    higher_is_better: bool


DEFINITIONS = {
    s.name: _Definition(s.member, s.inputs, s.statistic, s.headline, s.higher_is_better) for s in iter_metrics()
}


@dataclass(frozen=True)
class MeasureSpec:
    name: str
    group: str  # question group the measure is computed over (yesno, factoid, list, ideal, documents, ...)
    headline: bool  # a headline column of the metric registry
    ranking: bool  # in the report's tables, figures and paired tests (RANKING)
    higher_is_better: bool
    poolable: bool  # has a per-question statistic: can be pooled across batches and compared pairwise


def is_measure(key: str, value: Any) -> bool:
    return (
        not any(key == p or key.startswith(p) for p in NOT_MEASURES)
        and "." in key
        and (value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)))
    )


def measure_specs(keys: Iterable[str]) -> list[MeasureSpec]:
    """Specs of the measures among ``keys`` (metrics.json keys of any number of runs), ranking ones first."""
    names = sorted(set(keys), key=lambda k: (k not in RANKING, RANKING.index(k) if k in RANKING else 0, k))
    specs = []
    for name in names:
        known = DEFINITIONS.get(name)
        headline = known.headline if known else False
        better = known.higher_is_better if known else True
        specs.append(MeasureSpec(name, name.split(".", 1)[0], headline, name in RANKING, better, known is not None))
    return specs


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
