"""Evaluation: the official BioASQ Task B measures (bit-identical to the jar), ROUGE, bootstrap CIs, paired tests,
pooling across batches; every measure registered by name in :mod:`bioqa.evaluation.registry`.

>>> report = evaluate_submission("golden/11B3_golden.json", "run/submission.json")  # doctest: +SKIP
>>> print(format_table(report))  # doctest: +SKIP
"""

from bioqa.evaluation.api import compare_submissions, detect_phases, evaluate_submission
from bioqa.evaluation.official import (
    METRIC_ORDER,
    OfficialResult,
    SubmissionRejected,
    evaluate_official,
    evaluate_phase_a,
    evaluate_phase_b,
)
from bioqa.evaluation.options import EvaluationOptions
from bioqa.evaluation.registry import (
    GROUP_KEYS,
    MetricSpec,
    headline_metrics,
    iter_metrics,
    metric_names,
    metric_spec,
    register_metric,
)
from bioqa.evaluation.report import ComparisonReport, EvaluationReport, format_table
from bioqa.evaluation.rouge import ROUGE_METRICS, RougeOptions, rouge_scores
from bioqa.evaluation.stats import PooledResult, bootstrap_ci, paired_test, pool_per_question

__all__ = [
    "GROUP_KEYS",
    "METRIC_ORDER",
    "ROUGE_METRICS",
    "ComparisonReport",
    "EvaluationOptions",
    "EvaluationReport",
    "MetricSpec",
    "OfficialResult",
    "PooledResult",
    "RougeOptions",
    "SubmissionRejected",
    "bootstrap_ci",
    "compare_submissions",
    "detect_phases",
    "evaluate_official",
    "evaluate_phase_a",
    "evaluate_phase_b",
    "evaluate_submission",
    "format_table",
    "headline_metrics",
    "iter_metrics",
    "metric_names",
    "metric_spec",
    "paired_test",
    "pool_per_question",
    "register_metric",
    "rouge_scores",
]
