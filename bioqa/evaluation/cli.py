"""What ``evaluate.py`` does, as one plain function: score, print the table, write the run directory."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, get_args

from omegaconf import DictConfig, OmegaConf

from bioqa.errors import ConfigError
from bioqa.evaluation.api import Phase, compare_submissions, evaluate_submission
from bioqa.evaluation.official import VERSIONS
from bioqa.evaluation.options import EvaluationOptions
from bioqa.evaluation.report import ComparisonReport, EvaluationReport, format_table
from bioqa.runs import RUN_ID, write_json, write_provenance

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
    check_something_scored(report, phase)
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


def check_something_scored(report: EvaluationReport | ComparisonReport, phase: str) -> None:
    """Refuse a scoring that measured nothing (a submission without answers, documents or snippets for the
    phase; a comparison with no measure on questions both systems answered): an empty table is no result."""
    for one in (report.a, report.b) if isinstance(report, ComparisonReport) else (report,):
        if not one.metrics:
            raise ConfigError(
                f"{one.system}: nothing to score in phase {phase}: no question of the golden file has an answer, "
                "document or snippet in it"
            )
    if isinstance(report, ComparisonReport) and not any(r.n_questions for r in report.paired.values()):
        raise ConfigError(
            f"compare: {report.a.system} and {report.b.system} have no measure on questions both answered "
            f"(measures: {', '.join(sorted(report.a.metrics))} against {', '.join(sorted(report.b.metrics))}): "
            "nothing to compare"
        )


def _option(cfg: DictConfig, key: str, kind: type, allowed: tuple = ()) -> Any:
    """``cfg[key]`` checked against its type (and allowed values): a wrong one is one ConfigError line."""
    if OmegaConf.is_missing(cfg, key):
        raise ConfigError(f"{key}= is required: python evaluate.py golden=GOLDEN.json system=SUBMISSION.json")
    value = cfg[key]
    if kind is str and value is not None and not isinstance(value, str):
        value = str(value)  # a path given as a number
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok or (allowed and value not in allowed):
        expected = f"one of {', '.join(map(str, allowed))}" if allowed else f"a {kind.__name__}"
        raise ConfigError(f"{key}={value!r}: expected {expected}")
    return value


def evaluate_from_config(cfg: DictConfig) -> EvaluationReport | ComparisonReport:
    """``evaluate.py``: validate the composed config, then :func:`run_evaluation` into the run directory."""
    bootstrap = _option(cfg, "bootstrap", int)
    if bootstrap < 0:
        raise ConfigError(f"bootstrap={bootstrap}: expected the number of resamples, >= 0 (0 = no CIs)")
    options = EvaluationOptions(
        version=_option(cfg, "version", int, VERSIONS),
        bootstrap=bootstrap,
        seed=_option(cfg, "seed", int),
        rouge=_option(cfg, "rouge", bool),
    )
    return run_evaluation(
        golden=_option(cfg, "golden", str),
        system=_option(cfg, "system", str),
        phase=_option(cfg, "phase", str, get_args(Phase)),
        compare=None if cfg.compare is None else _option(cfg, "compare", str),
        output_dir=cfg.paths.output_dir,
        options=options,
    )
