"""The one place the report learns which measures exist: names, groups, headline flags, direction, statistics.

Derived from the keys of ``metrics.json`` and from :data:`bioqa.evaluation.MEASURES` (the per-question statistic of
every official measure). When the evaluation package ships a metric registry, swap it in here; nothing else in
``bioqa.analysis`` knows measure names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bioqa.evaluation import MEASURES, bootstrap_ci, paired_test

#: The measures BioASQ ranks systems by (since 9B), plus ROUGE-SU4 F1 which the paper reports for ideal answers.
HEADLINE = (
    "yesno.macro_f1",
    "factoid.mrr",
    "list.f1",
    "ideal.rouge_su4_f1",
    "ideal.rouge2_f1",
    "documents.MAP",
    "snippets.MF1",
)
#: metrics.json keys that are not measures of answer quality.
NOT_MEASURES = ("accounting.", "run.", "ci", "golden", "system", "phases", "version", "counts", "bootstrap")


@dataclass(frozen=True)
class MeasureSpec:
    name: str
    group: str  # question group the measure is computed over (yesno, factoid, list, ideal, documents, ...)
    headline: bool
    higher_is_better: bool
    poolable: bool  # has a per-question statistic: can be pooled across batches and compared pairwise


def is_measure(key: str, value: Any) -> bool:
    return (
        not any(key == p or key.startswith(p) for p in NOT_MEASURES)
        and "." in key
        and (value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)))
    )


def measure_specs(keys: Iterable[str]) -> list[MeasureSpec]:
    """Specs of the measures among ``keys`` (metrics.json keys of any number of runs), headline ones first."""
    names = sorted(set(keys), key=lambda k: (k not in HEADLINE, HEADLINE.index(k) if k in HEADLINE else 0, k))
    return [MeasureSpec(k, k.split(".", 1)[0], k in HEADLINE, True, k in MEASURES) for k in names]


def pooled_ci(
    rows: Sequence[Mapping[str, Any]], names: Iterable[str], n: int, seed: int
) -> dict[str, tuple[float, float]]:
    """95% CI of each measure over ``rows`` (per-question records of any number of batches), questions resampled."""
    return bootstrap_ci(rows, list(names), n, seed)


def pooled_value(rows: Sequence[Mapping[str, Any]], name: str) -> tuple[float, int]:
    """The measure over the pooled per-question records (the evaluator's statistic, not a mean of batch means)."""
    measure = MEASURES[name]
    members = [r for r in rows if measure.member in r]
    if not members:
        return float("nan"), 0
    columns = {k: np.asarray([float(r[k]) for r in members], dtype=float)[None, :] for k in measure.inputs}
    return float(measure.statistic(columns)[0]), len(members)


def paired(rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]], names, n: int, seed: int):
    """A − B per measure on the questions both scored (rows matched by ``index``): paired bootstrap."""
    return paired_test(rows_a, rows_b, list(names), n, seed)


#: The per-question value that says how well one question of each type was answered (error analysis).
QUESTION_SCORE = {
    "yesno": "yesno.correct",
    "factoid": "factoid.rr",
    "list": "list.f1",
    "summary": "ideal.rouge_su4_f1",
}


def question_score_key(question_type: str) -> str:
    return QUESTION_SCORE.get(question_type, "ideal.rouge_su4_f1")
