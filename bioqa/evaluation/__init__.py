"""Evaluation: the official BioASQ Task B measures (bit-identical to the jar), ROUGE, bootstrap CIs, paired tests,
pooling across batches; every measure a spec of :mod:`bioqa.evaluation.measures`, looked up in
:mod:`bioqa.evaluation.registry`.

>>> report = evaluate_submission("golden/11B3_golden.json", "run/submission.json")  # doctest: +SKIP
>>> print(format_table(report))  # doctest: +SKIP
"""

from bioqa.evaluation.api import compare_submissions, detect_phases, evaluate_submission
from bioqa.evaluation.official import (
    JAR_COLUMNS,
    OfficialResult,
    SubmissionRejected,
    evaluate_official,
    evaluate_phase_a,
    evaluate_phase_b,
)
from bioqa.evaluation.options import EvaluationOptions
from bioqa.evaluation.registry import (
    MetricSpec,
    group_member_keys,
    headline_metrics,
    iter_metrics,
    metric_names,
    metric_spec,
    ranking_metrics,
)
from bioqa.evaluation.report import ComparisonReport, EvaluationReport, format_table
from bioqa.evaluation.rouge import ROUGE_KEYS, RougeOptions, rouge_scores
from bioqa.evaluation.stats import PooledResult, bootstrap_ci, paired_test, pool_per_question

__all__ = [
    "JAR_COLUMNS",
    "ROUGE_KEYS",
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
    "group_member_keys",
    "headline_metrics",
    "iter_metrics",
    "metric_names",
    "metric_spec",
    "paired_test",
    "pool_per_question",
    "ranking_metrics",
    "rouge_scores",
]
