"""Bootstrap confidence intervals and paired significance tests from per-question values (numpy-vectorised).

Every headline measure is a statistic of the per-question records of its own question group (the questions the
official evaluator counts for it: document measures over the questions with document values, yes/no measures over
the yes/no questions, ...). A resample draws that group's questions with replacement and recomputes the statistic the
way the evaluator does: means for MPrec/MRec/MF1/MAP/accuracy/MRR/list and ROUGE scores, ``exp(mean(log(AP + eps)))``
for GMAP (with the snippet GMAP quirks), and F1(yes)/F1(no)/macro F1 from the confusion counts of the resampled
yes/no questions (never an average of per-question F1s). Groups are resampled independently (a stratified bootstrap).

The measures, their groups and statistics come from :mod:`bioqa.evaluation.registry`.

Paired comparison of two systems on the same golden file uses the questions counted for both, with the same
resampled indices for both systems: both systems' values on those paired questions, CI of the difference, a paired
bootstrap p-value (null-centred, two-sided) and a paired permutation p-value (each question's pair of records swapped
with probability 1/2). Pooling several batches works on the per-question rows of all batches together.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bioqa.evaluation.registry import Columns, MetricSpec, iter_metrics, metric_spec


def _specs(metrics: Iterable[str] | None) -> list[MetricSpec]:
    """The registered specs of ``metrics`` (all registered measures when ``None``)."""
    return list(iter_metrics()) if metrics is None else [metric_spec(name) for name in metrics]


def _columns(rows: Sequence[Mapping[str, Any]], keys: Iterable[str]) -> Columns:
    return {k: np.asarray([float(r[k]) for r in rows], dtype=float)[None, :] for k in keys}


def _rng(seed: int, name: str) -> np.random.Generator:
    """One stream per question group, so adding a measure never changes another measure's CI."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


@functools.lru_cache(maxsize=16)
def _resample_indices(seed: int, member: str, questions: int, n: int) -> np.ndarray:
    """The ``n`` × ``questions`` resampled question indices of a group's stream (read-only; shared by every
    system scored on as many questions of that group, so a sweep report draws them once)."""
    index = _rng(seed, member).integers(0, questions, size=(n, questions))
    index.flags.writeable = False
    return index


def _percentile_ci(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Resampled:
    """One measure of one system: the questions it counts (their golden ``index`` in order), its value on them and
    its value on each bootstrap resample of them."""

    questions: tuple[Any, ...]
    value: float
    boot: np.ndarray

    def ci(self, level: float = 0.95) -> tuple[float, float]:
        """Percentile bootstrap confidence interval."""
        return _percentile_ci(self.boot, level)


def resample(per_question: Sequence[Mapping[str, Any]], metric: str, n: int = 1000, seed: int = 0) -> Resampled | None:
    """The measure and its bootstrap distribution over its group's questions (``None`` without questions)."""
    measure = metric_spec(metric)
    rows = [r for r in per_question if measure.member in r]
    if not rows or n <= 0:
        return None
    columns = _columns(rows, measure.inputs)
    index = _resample_indices(seed, measure.member, len(rows), n)
    return Resampled(
        questions=tuple(r.get("index") for r in rows),
        value=measure.compute(rows),
        boot=measure.statistic({k: np.take(v[0], index) for k, v in columns.items()}),
    )


def bootstrap_ci(
    per_question: Sequence[Mapping[str, Any]],
    metrics: Iterable[str] | None = None,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CI of each measure (only measures whose group has questions are returned)."""
    out: dict[str, tuple[float, float]] = {}
    for measure in _specs(metrics):
        resampled = resample(per_question, measure.name, n, seed)
        if resampled is not None:
            out[measure.name] = resampled.ci(level)
    return out


@dataclass(frozen=True)
class PairedResult:
    """System A and system B on the same paired questions (those counted for both) and A minus B."""

    a: float
    b: float
    delta: float
    ci: tuple[float, float]
    p_bootstrap: float
    p_permutation: float | None  # None where only the bootstrap was run (:func:`paired_from_resamples`)
    n_questions: int


def _p_bootstrap(boot: np.ndarray, delta: float) -> float:
    """Two-sided paired bootstrap p-value: the null-centred differences at least as far from 0 as ``delta``."""
    return float((1 + np.sum(np.abs(boot - delta) >= abs(delta) - 1e-12)) / (len(boot) + 1))


def paired_from_resamples(a: Resampled, b: Resampled, level: float = 0.95) -> PairedResult | None:
    """A − B from two systems' bootstrap distributions when both counted the same questions in the same order (the
    resamples then draw the same questions for both): exactly :func:`paired_test`'s bootstrap CI and p-value, without
    the permutation test. ``None`` when the questions differ (use :func:`paired_test`)."""
    if a.questions != b.questions or None in a.questions or len(a.boot) != len(b.boot):
        return None
    delta = a.value - b.value
    boot = a.boot - b.boot
    return PairedResult(
        a=a.value,
        b=b.value,
        delta=delta,
        ci=_percentile_ci(boot, level),
        p_bootstrap=_p_bootstrap(boot, delta),
        p_permutation=None,
        n_questions=len(a.questions),
    )


def paired_test(
    rows_a: Sequence[Mapping[str, Any]],
    rows_b: Sequence[Mapping[str, Any]],
    metrics: Iterable[str] | None = None,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, PairedResult]:
    """Paired bootstrap and paired permutation (sign-flip) tests per measure; rows are matched by golden ``index``."""
    out: dict[str, PairedResult] = {}
    for measure in _specs(metrics):
        name = measure.name
        by_index_b = {r["index"]: r for r in rows_b if measure.member in r}
        pairs = [(r, by_index_b[r["index"]]) for r in rows_a if measure.member in r and r["index"] in by_index_b]
        if not pairs or n <= 0:
            continue
        a = _columns([p[0] for p in pairs], measure.inputs)
        b = _columns([p[1] for p in pairs], measure.inputs)
        value_a, value_b = measure.compute([p[0] for p in pairs]), measure.compute([p[1] for p in pairs])
        delta = value_a - value_b
        rng = _rng(seed, measure.member)
        index = rng.integers(0, len(pairs), size=(n, len(pairs)))
        boot = measure.statistic({k: v[0][index] for k, v in a.items()}) - measure.statistic(
            {k: v[0][index] for k, v in b.items()}
        )
        swap = rng.random((n, len(pairs))) < 0.5
        perm = measure.statistic({k: np.where(swap, b[k], a[k]) for k in a}) - measure.statistic(
            {k: np.where(swap, a[k], b[k]) for k in a}
        )
        threshold = abs(delta) - 1e-12
        out[name] = PairedResult(
            a=value_a,
            b=value_b,
            delta=delta,
            ci=_percentile_ci(boot, level),
            p_bootstrap=_p_bootstrap(boot, delta),
            p_permutation=float((1 + np.sum(np.abs(perm) >= threshold)) / (n + 1)),
            n_questions=len(pairs),
        )
    return out


@dataclass(frozen=True)
class PooledResult:
    """Measures over the questions of several batches together, with CIs from resampling those questions."""

    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]]
    counts: dict[str, int]  # questions per measure
    batches: int


def pool_per_question(
    batches: Sequence[Sequence[Mapping[str, Any]]],
    metrics: Iterable[str] | None = None,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PooledResult:
    """Pool batches on their per-question rows (``per_question.jsonl`` of each run), never by averaging batch means.

    Each measure is its registered statistic over all counted questions of all batches (so a batch of 90 questions
    weighs 90 times one question, and yes/no F1s and GMAP are recomputed on the pooled questions); its CI resamples
    the pooled questions (per question group, as :func:`bootstrap_ci`). Measures without questions are left out.
    """
    rows = [row for batch in batches for row in batch]
    specs = [s for s in _specs(metrics) if any(s.member in r for r in rows)]
    return PooledResult(
        metrics={s.name: s.compute(rows) for s in specs},
        ci=bootstrap_ci(rows, [s.name for s in specs], n, seed, level),
        counts={s.name: sum(1 for r in rows if s.member in r) for s in specs},
        batches=len(batches),
    )
