"""Bootstrap confidence intervals and paired significance tests from per-question values (numpy-vectorised).

Every headline measure is a statistic of the per-question records of its own question group (the questions the
official evaluator counts for it: document measures over the questions with document values, yes/no measures over
the yes/no questions, ...). A resample draws that group's questions with replacement and recomputes the statistic the
way the evaluator does: means for MPrec/MRec/MF1/MAP/accuracy/MRR/list and ROUGE scores, ``exp(mean(log(AP + eps)))``
for GMAP (with the snippet GMAP quirks), and F1(yes)/F1(no)/macro F1 from the confusion counts of the resampled
yes/no questions (never an average of per-question F1s). Groups are resampled independently (a stratified bootstrap).

Paired comparison of two systems on the same golden file uses the questions counted for both, with the same
resampled indices for both systems: CI of the difference, a paired bootstrap p-value (null-centred, two-sided) and a
paired permutation p-value (each question's pair of records swapped with probability 1/2).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bioqa.evaluation.official import EPSILON

Columns = dict[str, np.ndarray]  # per-question values, shape (resamples, questions)


@dataclass(frozen=True)
class Measure:
    """How a headline measure is computed from per-question values."""

    name: str
    member: str  # a question belongs to the measure's group when its record has this key
    inputs: tuple[str, ...]  # per-question keys the statistic needs
    statistic: Callable[[Columns], np.ndarray]


def _mean(key: str) -> Callable[[Columns], np.ndarray]:
    return lambda c: np.where(np.isnan(c[key]), 0.0, c[key]).mean(axis=1)


def _gmap(key: str, nan_log: float | None) -> Callable[[Columns], np.ndarray]:
    """GMAP; a NaN AP contributes ``nan_log`` to the sum of logs (documents: log(eps), concepts: 0)."""

    def stat(c: Columns) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(c[key] + EPSILON)
        return np.exp(np.where(np.isnan(c[key]), nan_log, logs).mean(axis=1))

    return stat


def _gmap_snippets(c: Columns) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(c["snippets.ap"] + EPSILON)
    total = np.where(np.isnan(c["snippets.ap"]), 0.0, logs).sum(axis=1)
    with np.errstate(over="ignore"):
        value = np.exp(total / c["snippets.ap"].shape[1])
    return np.where(np.isnan(total) | (total == 0), 0.0, value)


def _f1(label: bool) -> Callable[[Columns], np.ndarray]:
    def stat(c: Columns) -> np.ndarray:
        correct = c["yesno.correct"] == 1
        positive = c["yesno.is_yes"] == (1.0 if label else 0.0)
        tp = (correct & positive).sum(axis=1)
        errors = (~correct).sum(axis=1)
        denominator = 2 * tp + errors
        return np.where(denominator == 0, 0.0, 2 * tp / np.maximum(denominator, 1))

    return stat


def _macro_f1(c: Columns) -> np.ndarray:
    return (_f1(True)(c) + _f1(False)(c)) / 2


def _measures() -> dict[str, Measure]:
    out: list[Measure] = []
    for group in ("concepts", "documents", "snippets", "triples"):
        member = f"{group}.ap"
        for name, key in (("MPrec", "precision"), ("MRec", "recall"), ("MF1", "f1"), ("MAP", "ap")):
            out.append(Measure(f"{group}.{name}", member, (f"{group}.{key}",), _mean(f"{group}.{key}")))
        gmap = {
            "snippets": _gmap_snippets,
            "concepts": _gmap(member, 0.0),
        }.get(group, _gmap(member, float(np.log(EPSILON))))
        out.append(Measure(f"{group}.GMAP", member, (member,), gmap))
    yesno = ("yesno.correct", "yesno.is_yes")
    out += [
        Measure("yesno.acc", "yesno.correct", ("yesno.correct",), _mean("yesno.correct")),
        Measure("yesno.macro_f1", "yesno.correct", yesno, _macro_f1),
        Measure("yesno.f1_yes", "yesno.correct", yesno, _f1(True)),
        Measure("yesno.f1_no", "yesno.correct", yesno, _f1(False)),
    ]
    for name, key in (("strict_acc", "strict"), ("lenient_acc", "lenient"), ("mrr", "rr")):
        out.append(Measure(f"factoid.{name}", "factoid.rr", (f"factoid.{key}",), _mean(f"factoid.{key}")))
    for name in ("precision", "recall", "f1"):
        out.append(Measure(f"list.{name}", "list.f1", (f"list.{name}",), _mean(f"list.{name}")))
    for name in ("rouge2_recall", "rouge2_f1", "rouge_su4_recall", "rouge_su4_f1"):
        out.append(Measure(f"ideal.{name}", f"ideal.{name}", (f"ideal.{name}",), _mean(f"ideal.{name}")))
    return {m.name: m for m in out}


MEASURES: dict[str, Measure] = _measures()


def _columns(rows: Sequence[Mapping[str, Any]], keys: Iterable[str]) -> Columns:
    return {k: np.asarray([float(r[k]) for r in rows], dtype=float)[None, :] for k in keys}


def _rng(seed: int, name: str) -> np.random.Generator:
    """One stream per question group, so adding a measure never changes another measure's CI."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _percentile_ci(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(
    per_question: Sequence[Mapping[str, Any]],
    metrics: Iterable[str] | None = None,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CI of each measure (only measures whose group has questions are returned)."""
    out: dict[str, tuple[float, float]] = {}
    for name in metrics if metrics is not None else MEASURES:
        measure = MEASURES.get(name)
        if measure is None:
            continue
        rows = [r for r in per_question if measure.member in r]
        if not rows or n <= 0:
            continue
        columns = _columns(rows, measure.inputs)
        index = _rng(seed, measure.member).integers(0, len(rows), size=(n, len(rows)))
        out[name] = _percentile_ci(measure.statistic({k: v[0][index] for k, v in columns.items()}), level)
    return out


@dataclass(frozen=True)
class PairedResult:
    """System A minus system B on the questions counted for both."""

    delta: float
    ci: tuple[float, float]
    p_bootstrap: float
    p_permutation: float
    n_questions: int


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
    for name in metrics if metrics is not None else MEASURES:
        measure = MEASURES.get(name)
        if measure is None:
            continue
        by_index_b = {r["index"]: r for r in rows_b if measure.member in r}
        pairs = [(r, by_index_b[r["index"]]) for r in rows_a if measure.member in r and r["index"] in by_index_b]
        if not pairs or n <= 0:
            continue
        a = _columns([p[0] for p in pairs], measure.inputs)
        b = _columns([p[1] for p in pairs], measure.inputs)
        delta = float(measure.statistic(a)[0] - measure.statistic(b)[0])
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
            delta=delta,
            ci=_percentile_ci(boot, level),
            p_bootstrap=float((1 + np.sum(np.abs(boot - delta) >= threshold)) / (n + 1)),
            p_permutation=float((1 + np.sum(np.abs(perm) >= threshold)) / (n + 1)),
            n_questions=len(pairs),
        )
    return out
