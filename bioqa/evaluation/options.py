"""How a run is scored: one ``EvaluationOptions`` for ``infer.py`` (its ``evaluation:`` group) and ``evaluate.py``."""

from __future__ import annotations

from dataclasses import dataclass

from bioqa.evaluation.official import DEFAULT_VERSION


@dataclass(frozen=True)
class EvaluationOptions:
    """Scoring options (the entry points parse them: ``bioqa.config``; :func:`bioqa.evaluation.evaluate_submission`
    refuses a version or resample count it cannot use)."""

    enabled: bool = True  # infer: score when the questions carry golden answers
    version: int = DEFAULT_VERSION  # the official evaluator's -e
    bootstrap: int = 1000  # resamples for the CIs (0 = none)
    seed: int = 0
    rouge: bool = True  # ROUGE-2 / ROUGE-SU4 of ideal answers
