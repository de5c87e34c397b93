"""Every measure bioqa reports, by name (lm-eval style): one :class:`MetricSpec` per ``metrics.json`` key.

A spec says which question group the measure belongs to, which per-question values it is computed from (the
official evaluator and the ROUGE scorer write them into the per-question rows), how those values aggregate into the
set-level number (:meth:`MetricSpec.compute`: with the jar's arithmetic for the official measures, so the number is
the jar's), the vectorised statistic the bootstrap recomputes on each resample, whether it is a headline column,
its place among the report's ranking measures and whether higher is better.

The specs are the ``METRICS`` of the modules of :mod:`bioqa.evaluation.measures`, collected and frozen on first use:
adding a measure is adding such a module (CONTRIBUTING.md, "Add a measure"). Everything else — the metric order,
the group member keys, the table rows, the CIs, the sweep summary's and the report's measures — is a function of
this registry, so a measure cannot be missing from any of them.

>>> [s.name for s in headline_metrics()][:3]
['documents.MAP', 'snippets.MF1', 'yesno.acc']
>>> metric_spec("yesno.macro_f1").inputs
('yesno.correct', 'yesno.is_yes')
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

Columns = dict[str, np.ndarray]  # per-question values, shape (resamples, questions)
Statistic = Callable[[Columns], np.ndarray]
Values = Mapping[str, Sequence[float]]  # per-question values of the counted questions, in golden order
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
_PHASES: tuple[Phase, ...] = ("A", "B", "ideal")
MEASURES_PACKAGE = "bioqa.evaluation.measures"
#: The measure modules that come first, in this order (the jar's columns, then ROUGE); others follow by name.
_BUILTIN = ("phase_a", "phase_b", "ideal")


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
    rank: int | None = None  # place among the report's ranking measures (tables, figures, paired tests); None: not
    value: Callable[[Values], float] | None = None  # the set-level number when it must be the jar's (else statistic)
    empty: float = math.nan  # the set-level number without any counted question

    @property
    def phase(self) -> Phase:
        return GROUPS[self.group]

    @property
    def ranking(self) -> bool:
        """One of the report's ranking measures."""
        return self.rank is not None

    def compute(self, rows: Sequence[Mapping[str, Any]]) -> float:
        """The set-level number on the rows of the measure's questions (:attr:`empty` when there are none)."""
        members = [r for r in rows if self.member in r]
        if not members:
            return self.empty
        values = {k: [float(r[k]) for r in members] for k in self.inputs}
        if self.value is not None:
            return self.value(values)
        return float(self.statistic({k: np.asarray([v]) for k, v in values.items()})[0])


# ------------------------------------------------------------------------------------------------ the registry


def build_registry(specs: Iterable[MetricSpec]) -> Mapping[str, MetricSpec]:
    """The frozen name -> spec map in table order (phase A, B, ideal; within a phase, as given); ``ValueError`` for a
    duplicate name or an unknown group."""
    out: dict[str, MetricSpec] = {}
    for spec in specs:
        if spec.name in out:
            raise ValueError(f"metric {spec.name!r} is defined twice")
        if spec.group not in GROUPS:
            raise ValueError(f"metric {spec.name!r}: unknown group {spec.group!r}; known: {list(GROUPS)}")
        out[spec.name] = spec
    ordered = sorted(out.values(), key=lambda s: _PHASES.index(s.phase))
    return MappingProxyType({s.name: s for s in ordered})


def measure_modules() -> list[str]:
    """The modules of :mod:`bioqa.evaluation.measures` (built-in ones first), each with a ``METRICS`` tuple (found by
    name, as plug-ins are: the measures import this module)."""
    package = importlib.import_module(MEASURES_PACKAGE)
    names = sorted(info.name for info in pkgutil.iter_modules(package.__path__))
    ordered = [n for n in _BUILTIN if n in names] + [n for n in names if n not in _BUILTIN]
    return [f"{package.__name__}.{name}" for name in ordered]


@cache
def registry() -> Mapping[str, MetricSpec]:
    """Every measure, collected from :func:`measure_modules` once and frozen."""
    return build_registry(spec for module in measure_modules() for spec in importlib.import_module(module).METRICS)


# ------------------------------------------------------------------------------------------------ lookups


def metric_spec(name: str) -> MetricSpec:
    """The spec of a registered measure (``KeyError`` naming the known ones otherwise)."""
    try:
        return registry()[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; registered: {', '.join(registry())}") from None


def iter_metrics(
    group: str | None = None, phase: Phase | None = None, headline: bool | None = None
) -> Iterator[MetricSpec]:
    """Registered measures in table order, optionally of one group / phase / headline status."""
    for spec in registry().values():
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


def ranking_metrics() -> list[MetricSpec]:
    """The report's ranking measures (BioASQ's ranking measure of each group, ROUGE F1), in their rank order."""
    return sorted((s for s in iter_metrics() if s.rank is not None), key=lambda s: s.rank or 0)


def group_member_keys() -> dict[str, str]:
    """Question group -> the per-question key that marks a question as counted in it."""
    out: dict[str, str] = {}
    for spec in iter_metrics():
        out.setdefault(spec.group, spec.member)
    return out
