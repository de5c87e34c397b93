"""Every measure bioqa reports, registered by name (lm-eval style): one :class:`MetricSpec` per ``metrics.json`` key.

A spec says which question group the measure belongs to, which per-question values it is computed from (the
official evaluator and the ROUGE scorer write them into the per-question rows), how those values aggregate into the
set-level number, the vectorised statistic the bootstrap recomputes on each resample (means, GMAP, and the F1s of
yes/no from confusion counts), whether it is a headline column and whether higher is better. The metric order,
``GROUP_KEYS``, ``ROUGE_METRICS``, the table columns, the sweep summary's and the report's headline lists are all
derived from this one registry, so a measure cannot be missing from the table or lack a CI.

>>> [s.name for s in headline_metrics()][:3]
['documents.MAP', 'snippets.MF1', 'yesno.acc']
>>> metric_spec("yesno.macro_f1").inputs
('yesno.correct', 'yesno.is_yes')
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from bioqa.evaluation.official import EPSILON, PHASE_A_METRICS, PHASE_B_METRICS

Columns = dict[str, np.ndarray]  # per-question values, shape (resamples, questions)
Statistic = Callable[[Columns], np.ndarray]
Phase = Literal["A", "B", "ideal"]

#: Question groups in table order, with the phase that scores them.
GROUPS: dict[str, Phase] = {
    "concepts": "A",
    "documents": "A",
    "snippets": "A",
    "triples": "A",
    "yesno": "B",
    "factoid": "B",
    "list": "B",
    "ideal": "ideal",
}


@dataclass(frozen=True)
class MetricSpec:
    """One measure: its ``metrics.json`` key and how it is computed, aggregated and resampled."""

    name: str  # e.g. "documents.MAP": the metrics.json key
    group: str  # a key of GROUPS
    member: str  # a question counts for the measure when its per-question row has this key
    inputs: tuple[str, ...]  # the per-question values the measure is computed from
    aggregation: str  # in words: how the per-question values become the set-level number
    statistic: Statistic  # that aggregation, vectorised over bootstrap resamples
    headline: bool = False  # an official BioASQ headline measure (or ROUGE-2/SU4 F1): a column of summaries
    higher_is_better: bool = True

    @property
    def phase(self) -> Phase:
        return GROUPS[self.group]

    def compute(self, rows: Sequence[Mapping[str, Any]]) -> float:
        """The statistic on the rows of the measure's questions (``nan`` when there are none)."""
        members = [r for r in rows if self.member in r]
        if not members:
            return float("nan")
        columns = {k: np.asarray([[float(r[k]) for r in members]]) for k in self.inputs}
        return float(self.statistic(columns)[0])


# ------------------------------------------------------------------------------------------------ statistics


def _mean(key: str) -> Statistic:
    """Mean per row, a NaN value counting as 0 (the jar's convention)."""

    def stat(c: Columns) -> np.ndarray:
        means = c[key].mean(axis=1)  # the same sums as below when no value is NaN, in a third of the time
        return np.where(np.isnan(c[key]), 0.0, c[key]).mean(axis=1) if np.isnan(means).any() else means

    return stat


def _gmap(key: str, nan_log: float) -> Statistic:
    """GMAP = exp(mean(log(AP + eps))); a NaN AP contributes ``nan_log`` (documents: log(eps), concepts: 0)."""

    def stat(c: Columns) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(c[key] + EPSILON)
        return np.exp(np.where(np.isnan(c[key]), nan_log, logs).mean(axis=1))

    return stat


def _gmap_snippets(c: Columns) -> np.ndarray:
    """The jar's snippet GMAP: NaN APs add nothing to the log sum, a log sum of exactly 0 (or NaN) gives 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(c["snippets.ap"] + EPSILON)
    total = np.where(np.isnan(c["snippets.ap"]), 0.0, logs).sum(axis=1)
    with np.errstate(over="ignore"):
        value = np.exp(total / c["snippets.ap"].shape[1])
    return np.where(np.isnan(total) | (total == 0), 0.0, value)


def _f1(label: bool) -> Statistic:
    """F1 of the yes (or no) class from the confusion counts of the (resampled) yes/no questions."""

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


# ------------------------------------------------------------------------------------------------ the registry

_REGISTRY: dict[str, MetricSpec] = {}


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Add a measure (its name must be new and its group known); returns it."""
    if spec.name in _REGISTRY:
        raise ValueError(f"metric {spec.name!r} is already registered")
    if spec.group not in GROUPS:
        raise ValueError(f"metric {spec.name!r}: unknown group {spec.group!r}; known: {list(GROUPS)}")
    _REGISTRY[spec.name] = spec
    return spec


def _register_phase_a() -> None:
    columns = {"MPrec": "precision", "MRec": "recall", "MF1": "f1", "MAP": "ap"}
    for name in PHASE_A_METRICS:
        group, measure = name.split(".")
        member = f"{group}.ap"
        if measure == "GMAP":
            statistic = {"snippets": _gmap_snippets, "concepts": _gmap(member, 0.0)}.get(
                group, _gmap(member, float(np.log(EPSILON)))
            )
            register_metric(MetricSpec(name, group, member, (member,), "exp(mean(log(AP + 1e-5)))", statistic))
            continue
        key = f"{group}.{columns[measure]}"
        headline = name in ("documents.MAP", "snippets.MF1")
        register_metric(MetricSpec(name, group, member, (key,), "mean", _mean(key), headline=headline))


def _register_phase_b() -> None:
    yesno = ("yesno.correct", "yesno.is_yes")
    specs = {
        "yesno.acc": ("yesno.correct", ("yesno.correct",), "mean", _mean("yesno.correct"), True),
        "factoid.strict_acc": ("factoid.rr", ("factoid.strict",), "mean", _mean("factoid.strict"), True),
        "factoid.lenient_acc": ("factoid.rr", ("factoid.lenient",), "mean", _mean("factoid.lenient"), True),
        "factoid.mrr": ("factoid.rr", ("factoid.rr",), "mean", _mean("factoid.rr"), True),
        "list.precision": ("list.f1", ("list.precision",), "mean", _mean("list.precision"), True),
        "list.recall": ("list.f1", ("list.recall",), "mean", _mean("list.recall"), True),
        "list.f1": ("list.f1", ("list.f1",), "mean", _mean("list.f1"), True),
        "yesno.macro_f1": ("yesno.correct", yesno, "(F1 yes + F1 no) / 2 from confusion counts", _macro_f1, True),
        "yesno.f1_yes": ("yesno.correct", yesno, "F1 of 'yes' from confusion counts", _f1(True), False),
        "yesno.f1_no": ("yesno.correct", yesno, "F1 of 'no' from confusion counts", _f1(False), False),
    }
    for name in PHASE_B_METRICS:  # the jar's column order
        member, inputs, aggregation, statistic, headline = specs[name]
        register_metric(MetricSpec(name, name.split(".")[0], member, inputs, aggregation, statistic, headline))


def _register_rouge() -> None:
    """ROUGE of ideal answers (computed per question by :mod:`bioqa.evaluation.rouge`; the corpus score is the mean)."""
    for name in ("rouge2_recall", "rouge2_f1", "rouge_su4_recall", "rouge_su4_f1"):
        key = f"ideal.{name}"
        register_metric(MetricSpec(key, "ideal", key, (key,), "mean", _mean(key), headline=name.endswith("_f1")))


_register_phase_a()
_register_phase_b()
_register_rouge()


# ------------------------------------------------------------------------------------------------ lookups


def metric_spec(name: str) -> MetricSpec:
    """The spec of a registered measure (``KeyError`` naming the known ones otherwise)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; registered: {', '.join(_REGISTRY)}") from None


def iter_metrics(
    group: str | None = None, phase: Phase | None = None, headline: bool | None = None
) -> Iterator[MetricSpec]:
    """Registered measures in table order, optionally of one group / phase / headline status."""
    for spec in _REGISTRY.values():
        if group is not None and spec.group != group:
            continue
        if phase is not None and spec.phase != phase:
            continue
        if headline is not None and spec.headline != headline:
            continue
        yield spec


def metric_names(group: str | None = None, phase: Phase | None = None, headline: bool | None = None) -> tuple[str, ...]:
    """Names of :func:`iter_metrics` (the ``metrics.json`` keys, in table order)."""
    return tuple(s.name for s in iter_metrics(group, phase, headline))


def headline_metrics() -> list[MetricSpec]:
    """The headline measures, grouped in table order (phase A, yes/no, factoid, list, ideal)."""
    order = list(GROUPS)
    return sorted(iter_metrics(headline=True), key=lambda s: order.index(s.group))


def group_member_keys() -> dict[str, str]:
    """Question group -> the per-question key that marks a question as counted in it."""
    out: dict[str, str] = {}
    for spec in _REGISTRY.values():
        out.setdefault(spec.group, spec.member)
    return out


GROUP_KEYS: dict[str, str] = group_member_keys()
METRIC_ORDER: tuple[str, ...] = tuple(_REGISTRY)
