"""Phase B exact answers (yes/no, factoid, list): the jar's columns, in its order."""

from __future__ import annotations

from typing import Any

from bioqa.evaluation.aggregates import mean, yesno_f1, yesno_macro_f1
from bioqa.evaluation.registry import MetricSpec

_MEMBER = {"yesno": "yesno.correct", "factoid": "factoid.rr", "list": "list.f1"}
_YESNO = ("yesno.correct", "yesno.is_yes")


def _spec(name: str, inputs: tuple[str, ...], aggregate: dict[str, Any], rank: int | None = None) -> MetricSpec:
    """A phase B column (headline unless a per-class yes/no F1; the jar prints 0 for a type without questions)."""
    group = name.split(".")[0]
    headline = not name.startswith("yesno.f1_")
    return MetricSpec(name, group, _MEMBER[group], inputs, **aggregate, headline=headline, rank=rank, empty=0.0)


def _mean(name: str, key: str, rank: int | None = None) -> MetricSpec:
    return _spec(name, (key,), mean(key), rank)


METRICS = (
    _mean("yesno.acc", "yesno.correct"),
    _mean("factoid.strict_acc", "factoid.strict"),
    _mean("factoid.lenient_acc", "factoid.lenient"),
    _mean("factoid.mrr", "factoid.rr", rank=2),
    _mean("list.precision", "list.precision"),
    _mean("list.recall", "list.recall"),
    _mean("list.f1", "list.f1", rank=3),
    _spec("yesno.macro_f1", _YESNO, yesno_macro_f1(), rank=1),
    _spec("yesno.f1_yes", _YESNO, yesno_f1(True)),
    _spec("yesno.f1_no", _YESNO, yesno_f1(False)),
)
