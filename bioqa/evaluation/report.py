"""Evaluation and comparison reports: flat metrics, CIs, per-question values; JSON and a rich table."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bioqa.evaluation.registry import iter_metrics
from bioqa.evaluation.stats import PairedResult


def _json_float(value: float) -> float | None:
    """JSON has no NaN/Infinity: such values (the jar prints NaN for means over zero questions) become ``null``."""
    return None if value is None or math.isnan(value) or math.isinf(value) else float(value)


@dataclass
class EvaluationReport:
    """What :func:`bioqa.evaluation.evaluate_submission` returns (see ``bioqa/evaluation/README.md``)."""

    golden: str
    system: str
    phases: list[str]
    version: int
    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    per_question: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    bootstrap: int = 0
    seed: int = 0
    level: float = 0.95
    warnings: list[str] = field(default_factory=list)  # inputs a user surely did not mean (also said on stderr)

    def to_json(self) -> dict[str, Any]:
        """The ``metrics.json`` payload (per-question values go to ``per_question.jsonl`` separately)."""
        return {
            "golden": self.golden,
            "system": self.system,
            "phases": self.phases,
            "version": self.version,
            "metrics": {k: _json_float(v) for k, v in self.metrics.items()},
            "ci": {k: [_json_float(lo), _json_float(hi)] for k, (lo, hi) in self.ci.items()},
            "counts": dict(self.counts),
            "bootstrap": {"resamples": self.bootstrap, "seed": self.seed, "level": self.level},
            "warnings": list(self.warnings),
        }


@dataclass
class ComparisonReport:
    """System A against system B on the same golden file: both on the paired questions, delta = A − B."""

    a: EvaluationReport
    b: EvaluationReport
    paired: dict[str, PairedResult]

    def to_json(self) -> dict[str, Any]:
        return {
            "system_a": self.a.system,
            "system_b": self.b.system,
            "measures": {
                name: {
                    "a": _json_float(r.a),
                    "b": _json_float(r.b),
                    "delta": _json_float(r.delta),
                    "ci": [_json_float(r.ci[0]), _json_float(r.ci[1])],
                    "p_bootstrap": r.p_bootstrap,
                    "p_permutation": r.p_permutation,
                    "n_questions": r.n_questions,
                }
                for name, r in self.paired.items()
            },
        }


def _fmt(value: float | None, digits: int = 4) -> str:
    return "NaN" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _render(table: Table) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=120, force_terminal=False, color_system=None).print(table)
    return buffer.getvalue()


def _names(*paths: str) -> list[str]:
    """Short names for files in a title: the file names, or the last two parts of each path when those coincide
    (the full paths are in the run's metrics.json and provenance.json)."""
    names = [Path(path).name for path in paths]
    if len(set(names)) < len(names):
        names = [str(Path(*Path(path).parts[-2:])) for path in paths]
    return names


def format_table(report: EvaluationReport | ComparisonReport) -> str:
    """A plain-text table of the measures (with CIs; with deltas and p-values for a comparison)."""
    if isinstance(report, ComparisonReport):
        a, b = _names(report.a.system, report.b.system)
        table = Table(title=f"A = {a} vs B = {b} (-e {report.a.version}), both on the n questions counted for both")
        for column in ("measure", "A", "B", "A − B", f"{report.a.level:.0%} CI of A − B", "p boot", "p perm", "n"):
            table.add_column(column, justify="left" if column == "measure" else "right")
        for name, r in report.paired.items():
            table.add_row(
                name,
                _fmt(r.a),
                _fmt(r.b),
                _fmt(r.delta),
                f"[{_fmt(r.ci[0])}, {_fmt(r.ci[1])}]",
                f"{r.p_bootstrap:.3f}",
                f"{r.p_permutation:.3f}",
                str(r.n_questions),
            )
        return _render(table)
    system, golden = _names(report.system, report.golden)
    table = Table(title=f"{system} vs {golden} (-e {report.version})")
    for column in ("measure", "value", f"{report.level:.0%} CI", "n"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for spec in iter_metrics():
        n = report.counts.get(spec.group, 0)
        if spec.name not in report.metrics or not n:
            continue  # e.g. concepts and triples: no golden batch 7B-12B has any
        ci = report.ci.get(spec.name)
        value = _fmt(report.metrics[spec.name])
        table.add_row(spec.name, value, f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "", str(n))
    return _render(table)
