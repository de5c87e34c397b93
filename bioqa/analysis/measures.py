"""The measures the report compares: the keys of ``metrics.json`` that the metric registry of
:mod:`bioqa.evaluation` knows (its spec gives the group, statistic, headline flag, rank and direction); nothing else
in ``bioqa.analysis`` knows measure names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bioqa.evaluation.registry import MetricSpec, metric_spec, ranking_metrics, registry
from bioqa.evaluation.stats import PairedResult, Resampled, paired_from_resamples, paired_test, resample


def is_measure(key: str, value: Any) -> bool:
    """A registered measure with a number (or ``None``) in ``metrics.json``; every other key is not a measure."""
    return key in registry() and (value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)))


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
