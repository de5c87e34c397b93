"""Evaluation: the official BioASQ Task B measures (bit-identical to the jar), ROUGE, bootstrap CIs, paired tests.

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
from bioqa.evaluation.report import ComparisonReport, EvaluationReport, format_table
from bioqa.evaluation.rouge import ROUGE_METRICS, RougeOptions, rouge_scores
from bioqa.evaluation.stats import MEASURES, bootstrap_ci, paired_test

__all__ = [
    "MEASURES",
    "METRIC_ORDER",
    "ROUGE_METRICS",
    "ComparisonReport",
    "EvaluationReport",
    "OfficialResult",
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
    "paired_test",
    "rouge_scores",
]
