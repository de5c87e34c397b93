"""What ``evaluate.py`` does, as one plain function: score, print the table, write the run directory."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bioqa.evaluation.api import Phase, compare_submissions, evaluate_submission
from bioqa.evaluation.options import EvaluationOptions
from bioqa.evaluation.report import ComparisonReport, EvaluationReport, format_table
from bioqa.runs import RUN_ID, write_json, write_provenance

if TYPE_CHECKING:
    from bioqa.config.evaluate import EvaluateConfig

log = logging.getLogger(__name__)

#: Scores of a run (``EvaluationReport.to_json()``; infer adds its accounting beside them).
METRICS = "metrics.json"
#: Per-question values, one JSON object per scored golden question — the one name infer and evaluate both write.
PER_QUESTION = "per_question.jsonl"
#: Per-question values of the second system of ``compare=``.
PER_QUESTION_COMPARE = "per_question_compare.jsonl"
#: Written by ``bioqa.runs.write_provenance``.
PROVENANCE = "provenance.json"


def write_per_question(output_dir: str | os.PathLike, report: EvaluationReport, name: str = PER_QUESTION) -> Path:
    """Write ``output_dir/name``: one JSON object per scored golden question (id, index, type, its values)."""
    path = Path(output_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in report.per_question:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def own_output_dir(output_dir: str | os.PathLike) -> tuple[Path, str | None]:
    """``output_dir``, or a fresh sub-directory of it when it already holds a run's files (e.g. an infer run
    directory): evaluate never overwrites another run's ``metrics.json``. Returns (directory, warning)."""
    output_dir = Path(output_dir)
    taken = [name for name in (METRICS, PER_QUESTION, PER_QUESTION_COMPARE, PROVENANCE) if (output_dir / name).exists()]
    if not taken:
        return output_dir, None
    own = output_dir / "evaluations" / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{RUN_ID}"
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
    if isinstance(report, ComparisonReport):
        main.warnings.extend(w for w in report.b.warnings if w not in main.warnings)
    if moved:
        main.warnings.append(moved)
    payload = main.to_json()
    if isinstance(report, ComparisonReport):
        payload["comparison"] = report.to_json()
        write_per_question(output_dir, report.b, PER_QUESTION_COMPARE)
    write_json(output_dir / METRICS, payload)
    write_per_question(output_dir, main)
    write_provenance(output_dir, [p for p in (golden, system, compare) if p is not None])
    print(format_table(main))
    if isinstance(report, ComparisonReport):
        print(format_table(report))
    return report


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
