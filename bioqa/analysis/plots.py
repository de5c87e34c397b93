"""The report's PNG figures (matplotlib, headless Agg), drawn from plain data: the pooled rows of one comparison
group (``results.csv`` rows with ``batch == "pooled"``) and its paired rows (``paired.csv``). Every panel says n.

1. ``shot_curves.png``: score vs number of shots per series (a configuration without its shot count), one panel per
   ranking measure, 95% CI bands; configurations without shots (the no-model baseline, a model-free BM25 Phase A, an
   ensemble) as horizontal lines (at most 12 series: those with the best score on the first panel's measure;
   ``results.csv`` holds every configuration).
2. ``cost_latency.png``: score vs USD per 100 questions and vs seconds per question; Pareto front marked and labelled
   inside the figure; an axis on which every configuration costs 0 says so instead.
3. ``parse_failures.png``: parse-failure rate vs shots per series (at most 12: the highest rates).
4. ``forest.png``: paired differences against the reference configuration with 95% CIs, the test's n and its
   Holm-corrected p-value; red only where Holm's p < 0.05 (at most 30 configurations: those with the smallest Holm
   p-value; ``paired.csv`` holds every comparison).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bioqa.analysis.model import ALPHA, BASELINE_MODEL, EXACT_MAX_QUESTIONS

PANEL = (4.2, 3.2)
MAX_FOREST_CONFIGS = 30
MAX_SERIES = 12  # lines one panel can show apart (tab20 colours, a legend one can read)


def _top_series(frame: pd.DataFrame, score: str) -> tuple[pd.DataFrame, str]:
    """``frame`` restricted to the MAX_SERIES series with the highest ``score`` at any shot count, and the note
    saying so (empty when every series is kept)."""
    total = frame["series"].nunique()
    if total <= MAX_SERIES:
        return frame, ""
    keep = frame.groupby("series", sort=False)[score].max().sort_values(ascending=False, kind="stable").index
    return frame[frame["series"].isin(keep[:MAX_SERIES])], f"{MAX_SERIES} of {total} series"


def _grid(n: int, cols: int = 3) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(PANEL[0] * cols, PANEL[1] * rows), squeeze=False, layout="constrained"
    )
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _legend(fig: plt.Figure, axes: Sequence[plt.Axes]) -> None:
    """One legend for the figure, outside the panels on the right (columns when there are many series): every
    label of every panel, once."""
    found: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            found.setdefault(label, handle)
    handles, labels = list(found.values()), list(found)
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=7, ncols=math.ceil(len(labels) / 25))


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _headline(pooled: pd.DataFrame, ranking: Sequence[str]) -> list[str]:
    present = set(pooled.dropna(subset=["value"])["measure"])
    return [name for name in ranking if name in present]


def _n(frame: pd.DataFrame) -> str:
    counts = frame["n"].dropna()
    return f"n={int(counts.max())}" if len(counts) else "n=–"


def shot_curves(pooled: pd.DataFrame, ranking: Sequence[str], path: Path) -> Path | None:
    curves = pooled[(pooled["model"] != BASELINE_MODEL) & pooled["shots"].notna()]
    lines = pooled[pooled["shots"].isna()].dropna(subset=["value"])  # baseline, model-free runs, ensembles
    measures = _headline(pooled, ranking)
    if not measures:
        return None
    first = curves[curves["measure"] == measures[0]]
    kept, note = _top_series(first, "value") if len(first) else (first, "")
    curves = curves[curves["series"].isin(set(kept["series"]))]
    colors = dict(zip(dict.fromkeys(curves["series"]), plt.get_cmap("tab20").colors, strict=False))
    fig, axes = _grid(len(measures))
    styles = dict(zip(dict.fromkeys(lines["config"]), ("--", ":", "-.", (0, (5, 1, 1, 1))) * 8, strict=False))
    for ax, measure in zip(axes, measures, strict=True):
        frame = curves[curves["measure"] == measure]
        for series, group in frame.groupby("series", sort=False):
            group = group.sort_values("shots")
            ax.plot(group["shots"], group["value"], marker="o", label=series, color=colors[series])
            if group["ci_low"].notna().all():
                ax.fill_between(
                    group["shots"].astype(float), group["ci_low"].astype(float), group["ci_high"].astype(float),
                    color=colors[series], alpha=0.15, linewidth=0,
                )  # fmt: skip
        for _, row in lines[lines["measure"] == measure].iterrows():
            label = "baseline (no model)" if row["model"] == BASELINE_MODEL else f"{row['config']} (no shots)"
            ax.axhline(row["value"], color="0.4", linestyle=styles[row["config"]], linewidth=1, label=label)
        shots = sorted(frame["shots"].dropna().unique())
        ax.set_xticks(shots)
        ax.set_xlabel("shots")
        ax.set_title(f"{measure} ({_n(pooled[pooled['measure'] == measure])})")
        ax.set_ylim(-0.02, max(1.0, float(frame["ci_high"].max(skipna=True) or 0)) + 0.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score, pooled over batches (95% CI)")
    if note:
        fig.suptitle(f"{note}: the best on {measures[0]}; results.csv has every configuration", fontsize=9)
    _legend(fig, axes)
    return _save(fig, path)


def _note(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=8, wrap=True)
    ax.set_axis_off()


def _label_points(ax: plt.Axes, best: pd.DataFrame, x_key: str) -> None:
    """One label per Pareto point drawn, placed toward the inside of the axes (never clipped by the figure)."""
    low, high = ax.get_xlim()
    bottom, top = ax.get_ylim()
    for (x, y), tied in best.groupby([x_key, "value"], sort=False)["config"]:
        label = tied.iloc[0] + (f" (+{len(tied) - 1} tied)" if len(tied) > 1 else "")
        right = x > (low + high) / 2
        upper = y > (bottom + top) / 2
        ax.annotate(
            label, (x, y), fontsize=6, xytext=(-3 if right else 3, -3 if upper else 3), textcoords="offset points",
            ha="right" if right else "left", va="top" if upper else "bottom", wrap=True,
        )  # fmt: skip


def pareto_front(x: pd.Series, y: pd.Series) -> pd.Series:
    """True for points no other point beats (lower or equal x and higher or equal y, one strictly)."""
    xs, ys = x.to_numpy(dtype=float), y.to_numpy(dtype=float)
    no_worse = (xs[None, :] <= xs[:, None]) & (ys[None, :] >= ys[:, None])  # [i, j]: j is at least as good as i
    better = (xs[None, :] < xs[:, None]) | (ys[None, :] > ys[:, None])
    return pd.Series(~(no_worse & better).any(axis=1), index=x.index)


COST_AXES = (
    ("usd_per_100q", "USD per 100 questions", "USD"),
    ("s_per_question", "seconds per question (wall)", "time"),
)


def cost_note(frame: pd.DataFrame, measure: str, x_key: str, unit: str) -> str | None:
    """Why a cost/latency panel has nothing to draw (``None`` when it has): no question of the measure's type, no
    such cost recorded, or every configuration at 0 (local models: no cost axis to read)."""
    scored = frame.dropna(subset=["value"])
    if scored.empty:
        return f"no questions of the type {measure} counts"
    costs = scored[x_key].dropna()
    if costs.empty:
        return f"no {unit} recorded by these runs"
    if (costs.astype(float) == 0).all():
        return f"every configuration's {unit} is 0 (local models): nothing to trade off"
    return None


def cost_latency(pooled: pd.DataFrame, ranking: Sequence[str], path: Path) -> Path | None:
    measures = _headline(pooled, ranking)
    if not measures:
        return None
    fig, axes = plt.subplots(len(measures), 2, figsize=(9, 2.8 * len(measures)), squeeze=False, layout="constrained")
    legend = None
    for row, measure in enumerate(measures):
        frame = pooled[pooled["measure"] == measure]
        for col, (x_key, x_label, unit) in enumerate(COST_AXES):
            ax = axes[row][col]
            ax.set_title(f"{measure} ({_n(frame)})", fontsize=8)
            reason = cost_note(frame, measure, x_key, unit)
            if reason:
                _note(ax, f"{measure}: {reason}")
                continue
            points = frame.dropna(subset=[x_key, "value"])
            front = pareto_front(points[x_key].astype(float), points["value"].astype(float))
            ax.scatter(points[x_key], points["value"], s=18, color="tab:blue", alpha=0.6)
            best = points[front].sort_values(x_key)
            ax.step(best[x_key], best["value"], where="post", color="tab:red", linewidth=1)
            ax.scatter(best[x_key], best["value"], s=50, facecolors="none", edgecolors="tab:red", label="Pareto front")
            ax.margins(x=0.15, y=0.15)
            _label_points(ax, best, x_key)
            ax.set_xlabel(x_label)
            ax.set_ylabel(measure)
            ax.grid(alpha=0.3)
            legend = legend or ax
    if legend is not None:
        legend.legend(fontsize=7)
    return _save(fig, path)


def parse_failures(pooled: pd.DataFrame, path: Path) -> Path | None:
    frame = pooled[(pooled["model"] != BASELINE_MODEL) & pooled["shots"].notna()].drop_duplicates("config")
    frame = frame.dropna(subset=["parse_failure_rate"])
    if frame.empty:
        return None
    frame, note = _top_series(frame, "parse_failure_rate")
    fig, ax = plt.subplots(figsize=(5.5, 3.6), layout="constrained")
    colors = plt.get_cmap("tab20").colors
    for color, (series, group) in zip(colors, frame.groupby("series", sort=False), strict=False):
        group = group.sort_values("shots")
        ax.plot(group["shots"], 100 * group["parse_failure_rate"], marker="o", label=series, color=color)
    ax.set_xticks(sorted(frame["shots"].unique()))
    ax.set_xlabel("shots")
    ax.set_ylabel("answers not parsed (%)")
    ax.set_ylim(-2, 102)
    questions = f"n={int(frame['questions'].max())} questions" if frame["questions"].notna().any() else "n=–"
    title = f"parse failures, pooled over batches ({questions})"
    ax.set_title(title + (f"\n{note}: the highest rates" if note else ""))
    ax.grid(alpha=0.3)
    _legend(fig, [ax])
    return _save(fig, path)


def forest(paired: pd.DataFrame, reference: str | None, path: Path) -> Path | None:
    if paired is None or paired.empty:
        return None
    measures = list(dict.fromkeys(paired["measure"]))
    configs = list(dict.fromkeys(paired["config"]))
    title = f"paired differences, 95% CI; p: exact permutation (n <= {EXACT_MAX_QUESTIONS}) or paired bootstrap, "
    title += "Holm-corrected (red: < 0.05)"
    if len(configs) > MAX_FOREST_CONFIGS:  # the strongest evidence first; paired.csv has every row
        evidence = (
            paired.assign(  # smallest Holm p, ties (e.g. all 1.0) broken by |Δ| in CI half-widths
                z=-(paired["delta"].abs() / ((paired["ci_high"] - paired["ci_low"]) / 2).clip(lower=1e-12))
            )
            .groupby("config", sort=False)[["p_holm", "z"]]
            .min()
        )
        strongest = evidence.sort_values(["p_holm", "z"], kind="stable").index[:MAX_FOREST_CONFIGS]
        configs = [c for c in configs if c in set(strongest)]
        title += f"\n{MAX_FOREST_CONFIGS} of {paired['config'].nunique()} configurations (smallest Holm p, then |Δ|/CI)"
        paired = paired[paired["config"].isin(configs)]
    cols = min(3, len(measures))
    rows = math.ceil(len(measures) / cols)
    fig, grid = plt.subplots(
        rows,
        cols,
        figsize=(4.6 * cols, rows * (1.2 + 0.3 * len(configs))),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    flat = list(grid.flat)
    for ax in flat[len(measures) :]:
        ax.set_visible(False)
    for ax, measure in zip(flat, measures, strict=False):
        frame = paired[paired["measure"] == measure].set_index("config").reindex(configs)
        frame = frame.assign(y=np.arange(len(configs))[::-1]).dropna(subset=["delta"])
        significant = frame["p_holm"] < ALPHA
        for color, points in (("tab:red", frame[significant]), ("tab:blue", frame[~significant])):
            if len(points):
                xerr = [points["delta"] - points["ci_low"], points["ci_high"] - points["delta"]]
                ax.errorbar(points["delta"], points["y"], xerr=xerr, fmt="o", color=color, markersize=4, capsize=2)
        ax.axvline(0, color="0.4", linewidth=1)
        for yi, p_holm, n in zip(frame["y"], frame["p_holm"], frame["n"], strict=True):
            if pd.notna(p_holm):
                ax.annotate(
                    f"p={p_holm:.2f} n={int(n)}", (1.01, yi), xycoords=("axes fraction", "data"), fontsize=6,
                    ha="left", va="center", annotation_clip=False,
                )  # fmt: skip
        ax.set_title(measure, fontsize=9)
        ax.set_xlabel(f"Δ vs {reference}", fontsize=8)
        ax.grid(alpha=0.3, axis="x")
    for ax in grid[:, 0]:
        ax.set_yticks(list(range(len(configs)))[::-1], configs, fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def draw_figures(
    pooled: pd.DataFrame,
    paired: pd.DataFrame,
    ranking: Sequence[str],
    reference: str | None,
    out_dir: Path,
    suffix: str = "",
) -> dict[str, Path]:
    """Draw every figure that has data into ``out_dir`` (``NAME{suffix}.png``); returns name -> PNG path.
    ``pooled``/``paired``: one comparison group's pooled rows and paired rows; ``ranking``: the ranking measures,
    in panel order."""
    names = {name: f"{name}{suffix}" for name in ("shot_curves", "cost_latency", "parse_failures", "forest")}
    drawn = {
        names["shot_curves"]: shot_curves(pooled, ranking, out_dir / f"{names['shot_curves']}.png"),
        names["cost_latency"]: cost_latency(pooled, ranking, out_dir / f"{names['cost_latency']}.png"),
        names["parse_failures"]: parse_failures(pooled, out_dir / f"{names['parse_failures']}.png"),
        names["forest"]: forest(paired, reference, out_dir / f"{names['forest']}.png"),
    }
    return {name: path for name, path in drawn.items() if path is not None}
