"""``report.md``: the tables a paper would print (pooled and per batch, best per measure in bold), paired
differences against the reference, what the tests can resolve, the baselines' definitions, the figures and every
warning. Rendered from plain data (the results and paired tables, an :class:`Overview`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bioqa.analysis.model import ALPHA, POOLED, Comparison

BASELINE_NOTE = (
    "`baseline` = no model: yes/no always the few-shot pool's majority answer; factoid/list the 5 most frequent "
    "name-like entities of the given snippets (capitalised, digit or inner-capital token runs not in the question; "
    "see `bioqa/analysis/baselines.py`); ideal the first given snippet verbatim. Scored by the official measures, on "
    "exactly the questions of the configurations it is shown beside. Phase A: a `task=phase_a retrieval=bm25` run "
    "(no model) appears as its own row, labelled `bm25 phase_a`."
)


@dataclass(frozen=True)
class Overview:
    """What report.md says besides the tables."""

    sources: list[str]
    created: str
    runs: int
    configs: int
    batches: list[str]
    comparisons: list[Comparison]
    resolution: str
    figures: list[str]
    warnings: list[str]
    unranked_batches: list[str]  # batches whose runs answered different questions


def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _cell(row: dict, best: bool) -> str:
    text = _num(row["value"])
    if best and text != "–":
        text = f"**{text}**"
    if pd.notna(row["ci_low"]) and pd.notna(row["ci_high"]):
        text += f" [{_num(row['ci_low'], 2)}, {_num(row['ci_high'], 2)}]"
    return text


def _table(frame: pd.DataFrame, measures: list[str], ranked: bool = True) -> list[str]:
    """Rows = configurations, columns = measures (value [95% CI], best in bold when ``ranked``) + n, cost, parse."""
    frame = frame[frame["measure"].isin(measures)]
    measures = [m for m in measures if m in set(frame["measure"])]
    best = frame.dropna(subset=["value"]).groupby("measure")["value"].max().to_dict() if ranked else {}
    header = ["config", *measures, "n", "parse fail", "USD/100q", "q/min"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_config: dict[str, dict[str, dict]] = {}
    for row in frame.to_dict("records"):
        by_config.setdefault(row["config"], {})[row["measure"]] = row
    for config, by_measure in by_config.items():
        cells = [
            _cell(by_measure[m], by_measure[m]["value"] == best.get(m)) if m in by_measure else "–" for m in measures
        ]
        first = next(iter(by_measure.values()))
        counts = "/".join(
            str(int(by_measure[m]["n"])) if pd.notna(by_measure[m]["n"]) else "–" for m in measures if m in by_measure
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
    header = ["config", "reference", "measure", "Δ", "95% CI", "test", "p", "p (Holm)", "n"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in paired.to_dict("records"):
        mark = "**" if r["p_holm"] < ALPHA else ""
        lines.append(
            f"| {r['config']} | {r['reference']} | {r['measure']} | {mark}{r['delta']:+.3f}{mark} | "
            f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}] | {r['test']} | {r['p']:.3f} | {r['p_holm']:.3f} | "
            f"{int(r['n'])} |"
        )
    return lines


def _comparison_lines(comparison: Comparison, several: bool) -> list[str]:
    what = f"Configurations compared on {comparison.description}"
    if comparison.restricted:
        what += (
            ": the configurations answered different questions, so pooled values, rankings, figures and paired "
            f"tests use only the {len(comparison.questions)} questions every one of them answered"
        )
    if several:
        what = f"Group {comparison.name}: " + what + "; no configuration is ranked against another group's"
    return [what + "."]


def write_markdown(
    path: Path, results: pd.DataFrame, paired: pd.DataFrame, measures: list[str], overview: Overview
) -> Path:
    """Write ``report.md`` from the report's tables; ``measures``: the ranking measures, in table order."""
    several = len(overview.comparisons) > 1
    lines = [
        "# Sweep report",
        "",
        f"Sources: {', '.join(f'`{s}`' for s in overview.sources)}. {overview.runs} runs, "
        f"{overview.configs} configurations, batches {', '.join(overview.batches)}. Written {overview.created}.",
        "",
        "Cells: value [95% CI]; **bold** = best configuration for that measure; – = no question of that type. "
        "`n` = questions per measure. A configuration is everything that determined its answers (its run identity): "
        "runs that differ in any such setting are separate rows, labelled by the settings that tell them apart. "
        "Pooled rows compute each measure over the per-question scores of all batches (not a mean of batch means); "
        "their CIs resample those questions. " + BASELINE_NOTE,
        "",
    ]
    for comparison in overview.comparisons:
        lines += _comparison_lines(comparison, several)
    lines += ["", overview.resolution]
    pooled = results[results["batch"] == POOLED]
    for comparison in overview.comparisons:
        title = "## Pooled over batches" + (f" — group {comparison.name}" if several else "")
        frame = pooled[pooled["comparison"] == comparison.name]
        lines += ["", title, "", f"n = the {len(comparison.questions)} compared questions, per measure.", ""]
        lines += _table(frame, measures)
    for batch in sorted(set(results["batch"]) - {POOLED}):
        frame = results[results["batch"] == batch]
        ranked = batch not in overview.unranked_batches
        lines += ["", f"## Batch {batch}", ""]
        if not ranked:
            lines += ["Each run on its own questions (they differ between runs): not ranked, no bold.", ""]
        lines += _table(frame, measures, ranked)
    references = [c.reference for c in overview.comparisons if c.reference]
    if references:
        title = "## Paired differences vs " + ", ".join(f"`{r}`" for r in references)
        lines += [
            "",
            title,
            "",
            "Same questions for both (paired by batch and question); Δ = config − reference; 95% CI of Δ from the "
            "paired bootstrap; p from an exact permutation test (every swap of the pairs) on few questions, else "
            "from the paired bootstrap; Holm-corrected across all rows of this table; **bold** = significant at 0.05 "
            "after Holm.",
            "",
        ]
        lines += _paired_table(paired) if len(paired) else ["(no comparable configuration)"]
    if overview.figures:
        lines += ["", "## Figures", ""]
        if several:
            lines += ["One set of figures per group (`_Q1`, `_Q2`, …): no figure compares across groups.", ""]
        lines += [f"![{name}]({name}.png)" for name in overview.figures]
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in overview.warnings] or ["none"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
