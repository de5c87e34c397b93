"""Phase A (concepts, documents, snippets, triples): the jar's columns, from the per-question P/R/F1/AP rows."""

from __future__ import annotations

from bioqa.evaluation.aggregates import gmap, mean, snippet_gmap
from bioqa.evaluation.official import JAR_COLUMNS
from bioqa.evaluation.registry import MetricSpec

_INPUT = {"MPrec": "precision", "MRec": "recall", "MF1": "f1", "MAP": "ap", "GMAP": "ap"}
#: The report's ranking measures of phase A (BioASQ ranks snippets by MF1 since 9B).
_RANK = {"documents.MAP": 6, "snippets.MF1": 7}
#: Without questions the jar prints 0, except where it divides 0 by 0 (NaN).
_NAN_WHEN_EMPTY = {
    "documents.MF1",
    "documents.MAP",
    "documents.GMAP",
    *(f"snippets.{m}" for m in ("MPrec", "MRec", "MF1", "MAP")),
}


def _spec(name: str) -> MetricSpec:
    group, measure = name.split(".")
    member, key = f"{group}.ap", f"{group}.{_INPUT[measure]}"
    if measure != "GMAP":
        aggregate = mean(key)
    elif group == "snippets":
        aggregate = snippet_gmap()
    else:
        aggregate = gmap(key, nan_as_eps=group == "documents")
    empty = float("nan") if name in _NAN_WHEN_EMPTY else 0.0
    headline = name in _RANK
    return MetricSpec(name, group, member, (key,), **aggregate, headline=headline, rank=_RANK.get(name), empty=empty)


METRICS = tuple(_spec(name) for name in JAR_COLUMNS["A"])
