"""``report.md``: the tables a paper would print (pooled and per batch, best per measure in bold), paired
differences against the reference, the baselines' definitions, the figures and every warning."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from bioqa.analysis.baselines import BASELINE_MODEL

if TYPE_CHECKING:
    from bioqa.analysis.report import Report

BASELINE_NOTE = (
    "`baseline` = no model: yes/no always the few-shot pool's majority answer; factoid/list the 5 most frequent "
    "name-like entities of the given snippets (capitalised, digit or inner-capital token runs not in the question; "
    "see `bioqa/analysis/baselines.py`); ideal the first given snippet verbatim. Scored by the official measures. "
    "No Phase A baseline (BM25 runs via `infer.py task=phase_a retrieval=bm25` appear as ordinary rows)."
)


def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _cell(row: dict, best: bool) -> str:
    text = _num(row["value"])
    if best:
        text = f"**{text}**"
    if pd.notna(row["ci_low"]) and pd.notna(row["ci_high"]):
        text += f" [{_num(row['ci_low'], 2)}, {_num(row['ci_high'], 2)}]"
    return text


def _table(frame: pd.DataFrame, measures: list[str]) -> list[str]:
    """Rows = configurations, columns = measures (value [95% CI], best in bold) + cost and parse columns."""
    frame = frame[frame["measure"].isin(measures)]
    measures = [m for m in measures if m in set(frame["measure"])]
    best = frame.groupby("measure")["value"].max().to_dict()
    header = ["config", *measures, "n", "parse fail", "USD/100q", "q/min"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_config: dict[str, dict[str, dict]] = {}
    for row in frame.to_dict("records"):
        by_config.setdefault(row["config"], {})[row["measure"]] = row
    for config, by_measure in by_config.items():
        cells = [_cell(by_measure[m], by_measure[m]["value"] == best[m]) if m in by_measure else "" for m in measures]
        first = next(iter(by_measure.values()))
        counts = "/".join(
            str(int(by_measure[m]["n"])) for m in measures if m in by_measure and pd.notna(by_measure[m]["n"])
        )
        row = [
            str(config),
            *cells,
            counts,
            _num(first["parse_failure_rate"]),
            _num(first["usd_per_100q"], 4),
            _num(first["questions_per_minute"], 1),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _paired_table(paired: pd.DataFrame) -> list[str]:
    header = ["config", "measure", "Δ vs reference", "95% CI", "p (paired bootstrap)", "p (Holm)", "n"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in paired.to_dict("records"):
        mark = "**" if r["p_holm"] < 0.05 else ""
        lines.append(
            f"| {r['config']} | {r['measure']} | {mark}{r['delta']:+.3f}{mark} | [{_num(r['ci_low'])}, "
            f"{_num(r['ci_high'])}] | {r['p_bootstrap']:.3f} | {r['p_holm']:.3f} | {int(r['n'])} |"
        )
    return lines


def write_markdown(report: Report, sources: list[Path], created: str) -> Path:
    results = report.results
    headline = [s.name for s in report.measures if s.ranking]
    runs = [r for r in report.runs if r.model != BASELINE_MODEL]
    batches = sorted({r.batch for r in runs})
    lines = [
        "# Sweep report",
        "",
        f"Sources: {', '.join(f'`{s}`' for s in sources)}. {len(runs)} runs, "
        f"{len({r.config for r in runs})} configurations, batches {', '.join(batches)}. Written {created}.",
        "",
        "Cells: value [95% CI]; **bold** = best configuration for that measure. `n` = questions per measure. "
        "Pooled rows compute each measure over the per-question scores of all batches (not a mean of batch means); "
        "their CIs resample those questions. " + BASELINE_NOTE,
        "",
        "## Pooled over batches",
        "",
        *_table(results[results["batch"] == "pooled"], headline),
    ]
    for batch in sorted(set(results["batch"]) - {"pooled"}):
        lines += ["", f"## Batch {batch}", "", *_table(results[results["batch"] == batch], headline)]
    if report.reference:
        lines += [
            "",
            f"## Paired differences vs `{report.reference}`",
            "",
            "Same questions for both (paired by batch and question); Δ = config − reference; p-values from the paired "
            "bootstrap, Holm-corrected across all rows of this table; **bold** = significant at 0.05 after Holm.",
            "",
        ]
        lines += _paired_table(report.paired) if len(report.paired) else ["(no comparable configuration)"]
    if report.figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{name}]({path.name})" for name, path in report.figures.items()]
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in report.warnings] or ["none"]
    path = report.out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
