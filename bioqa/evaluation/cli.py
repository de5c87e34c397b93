"""What ``evaluate.py`` does, as one plain function: score, print the table, write the run directory."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bioqa.errors import ConfigError
from bioqa.evaluation.api import Phase, compare_submissions, evaluate_submission
from bioqa.evaluation.options import EvaluationOptions
from bioqa.evaluation.report import ComparisonReport, EvaluationReport, format_table
from bioqa.rundir import (
    EVALUATIONS_DIR,
    METRICS,
    PER_QUESTION,
    PER_QUESTION_COMPARE,
    PROVENANCE,
    RunMetrics,
    write_jsonl,
    write_metrics,
)
from bioqa.runs import RUN_ID, write_provenance

if TYPE_CHECKING:
    from bioqa.config.evaluate import EvaluateConfig

log = logging.getLogger(__name__)


def own_output_dir(output_dir: str | os.PathLike) -> tuple[Path, str | None]:
    """``output_dir``, or a fresh sub-directory of it when it already holds a run's files (e.g. an infer run
    directory): evaluate never overwrites another run's ``metrics.json``. Returns (directory, warning)."""
    output_dir = Path(output_dir)
    taken = [name for name in (METRICS, PER_QUESTION, PER_QUESTION_COMPARE, PROVENANCE) if (output_dir / name).exists()]
    if not taken:
        return output_dir, None
    own = output_dir / EVALUATIONS_DIR / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{RUN_ID}"
    return own, f"{output_dir} already holds {', '.join(taken)} of another run; writing into {own} instead"


def run_evaluation(
    golden: str | os.PathLike,
    system: str | os.PathLike,
    phase: Phase = "AB",
    compare: str | os.PathLike | None = None,
    output_dir: str | os.PathLike = ".",
    options: EvaluationOptions = EvaluationOptions(),
) -> EvaluationReport | ComparisonReport:
    """Score ``system`` (and compare it with ``compare``); write ``metrics.json``, ``per_question.jsonl`` and
    ``provenance.json`` into ``output_dir`` (a fresh sub-directory when it holds another run's files) and print
    the table. Raises ``BioASQFormatError`` on rejected input; warnings go to stderr and ``metrics.json``."""
    output_dir, moved = own_output_dir(output_dir)
    if moved:
        log.warning("%s", moved)
    kwargs = dict(
        phase=phase, version=options.version, rouge=options.rouge, bootstrap=options.bootstrap, seed=options.seed
    )
    if compare is None:
        report: EvaluationReport | ComparisonReport = evaluate_submission(golden, system, **kwargs)
        main = report
    else:
        report = compare_submissions(golden, system, compare, **kwargs)
        main = report.a
    check_something_scored(main, phase)
    if isinstance(report, ComparisonReport):
        main.warnings.extend(w for w in report.b.warnings if w not in main.warnings)
    if moved:
        main.warnings.append(moved)
    payload = main.to_json()
    if isinstance(report, ComparisonReport):
        payload["comparison"] = report.to_json()
        write_jsonl(output_dir / PER_QUESTION_COMPARE, report.b.per_question)
    write_metrics(output_dir, RunMetrics.scored(payload))
    write_jsonl(output_dir / PER_QUESTION, main.per_question)
    write_provenance(output_dir, [p for p in (golden, system, compare) if p is not None])
    print(format_table(main))
    if isinstance(report, ComparisonReport):
        print(format_table(report))
    return report


def check_something_scored(report: EvaluationReport, phase: str) -> None:
    """Refuse a scoring that measured nothing (a submission without answers, documents or snippets for the phase):
    an empty table is no result. (A comparison refuses two submissions with no scored question in common.)"""
    if not report.metrics:
        raise ConfigError(
            f"{report.system}: nothing to score in phase {phase}: no question of the golden file has an answer, "
            "document or snippet in it"
        )


def evaluate_from_config(config: EvaluateConfig, output_dir: str | os.PathLike) -> EvaluationReport | ComparisonReport:
    """``evaluate.py``, given its parsed config (:func:`bioqa.config.evaluate.validate_evaluate_config`):
    :func:`run_evaluation` into the run directory ``output_dir``."""
    options = EvaluationOptions(
        version=config.version, bootstrap=config.bootstrap, seed=config.seed, rouge=config.rouge
    )
    return run_evaluation(
        golden=config.golden,
        system=config.system,
        phase=config.phase,
        compare=config.compare,
        output_dir=output_dir,
        options=options,
    )
