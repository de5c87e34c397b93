"""What ``evaluate.py`` does, as one plain function: score, print the table, write the run directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bioqa.evaluation.api import Phase, compare_submissions, evaluate_submission
from bioqa.evaluation.report import ComparisonReport, EvaluationReport, format_table
from bioqa.runs import write_json, write_provenance


def write_per_question(path: str | os.PathLike, report: EvaluationReport) -> Path:
    """One JSON object per golden question that was scored (id, type, every per-question value)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in report.per_question:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def run_evaluation(
    golden: str | os.PathLike,
    system: str | os.PathLike,
    phase: Phase = "AB",
    version: int = 9,
    compare: str | os.PathLike | None = None,
    output_dir: str | os.PathLike = ".",
    bootstrap: int = 1000,
    seed: int = 0,
    rouge: bool = True,
) -> EvaluationReport | ComparisonReport:
    """Score ``system`` (and compare it with ``compare``); write ``metrics.json``, ``per_question.jsonl`` and
    ``provenance.json`` into ``output_dir`` and print the table. Raises ``BioASQFormatError`` on rejected input."""
    output_dir = Path(output_dir)
    options = dict(phase=phase, version=version, rouge=rouge, bootstrap=bootstrap, seed=seed)
    if compare is None:
        report: EvaluationReport | ComparisonReport = evaluate_submission(golden, system, **options)
        main = report
    else:
        report = compare_submissions(golden, system, compare, **options)
        main = report.a
    payload = main.to_json()
    if isinstance(report, ComparisonReport):
        payload["comparison"] = report.to_json()
        write_per_question(output_dir / "per_question_compare.jsonl", report.b)
    write_json(output_dir / "metrics.json", payload)
    write_per_question(output_dir / "per_question.jsonl", main)
    write_provenance(output_dir, [p for p in (golden, system, compare) if p is not None])
    print(format_table(main))
    if isinstance(report, ComparisonReport):
        print(format_table(report))
    return report
