"""ROUGE of ideal answers (per question from :mod:`bioqa.evaluation.rouge`; the set-level score is the mean)."""

from __future__ import annotations

from bioqa.evaluation.aggregates import mean
from bioqa.evaluation.registry import MetricSpec
from bioqa.evaluation.rouge import ROUGE_KEYS

#: ROUGE-SU4 and ROUGE-2 F1, which the BioASQ papers report for ideal answers, rank the report's configurations.
_RANK = {"ideal.rouge_su4_f1": 4, "ideal.rouge2_f1": 5}

METRICS = tuple(
    MetricSpec(key, "ideal", key, (key,), **mean(key), headline=key.endswith("_f1"), rank=_RANK.get(key))
    for key in ROUGE_KEYS
)
