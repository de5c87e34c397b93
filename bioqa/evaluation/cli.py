"""What ``evaluate.py`` does, as one plain function: score, print the table, write the run directory."""

from __future__ import annotations

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
