"""The sweep report: ``python evaluate.py report=SWEEP_DIR`` → ``SWEEP_DIR/report/``.

``results.csv`` / ``results.parquet`` (tidy: one row per run × measure, plus ``batch == "pooled"`` rows per
configuration), ``paired.csv`` (differences against a reference configuration), ``report.md`` (per-batch and pooled
tables, best configuration per measure in bold, warnings) and PNG figures (see :mod:`bioqa.analysis.plots`).

Pooling across batches uses the per-question scores of all the configuration's runs (the evaluator's statistic over
the union of questions, not a mean of batch means); its 95% CI resamples those questions (ranking measures only:
the other pooled measures carry no CI, which keeps a 200-configuration report within seconds). Paired differences pair
questions by (batch, question) and are tested with the paired bootstrap of :mod:`bioqa.evaluation.stats`; p-values
are Holm-corrected across every (configuration, measure) comparison of the report. A configuration scored on the same
questions as the reference is compared through the two bootstrap distributions (the resamples draw the same questions
for both, and are drawn once per question group for the whole report): the numbers of the paired bootstrap itself.
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from bioqa.analysis.baselines import BASELINE_MODEL, baseline_run, majority_yesno
from bioqa.analysis.measures import measure_specs, paired, pooled_value, resample_measures
from bioqa.analysis.runs import (
    REPORT_MARKER,
    Run,
    SkippedRun,
    find_run_dirs,
    is_report_dir,
    load_run,
    resolve_golden,
)
from bioqa.errors import BioQAError, ConfigError
from bioqa.evaluation.registry import MetricSpec
from bioqa.evaluation.stats import Resampled

log = logging.getLogger(__name__)

POOLED = "pooled"
COLUMNS = (
    "config", "model", "adapter", "shots", "selection", "wiki", "task", "batch", "question_type", "measure",
    "headline", "ranking", "value", "ci_low", "ci_high", "n", "parse_failure_rate", "prompt_tokens",
    "completion_tokens", "cost_usd", "usd_per_100q", "wall_time_s", "s_per_question", "questions_per_minute",
    "questions", "run_dir", "git_hash",
)  # fmt: skip
PAIRED_COLUMNS = ("config", "reference", "measure", "delta", "ci_low", "ci_high", "p_bootstrap", "p_holm", "n")


@dataclass
class Report:
    """What :func:`build_report` wrote, as data (for notebooks)."""

    out_dir: Path
    results: pd.DataFrame
    paired: pd.DataFrame
    measures: list[MetricSpec]
    reference: str | None
    warnings: list[str] = field(default_factory=list)
    figures: dict[str, Path] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)

    def pooled(self) -> pd.DataFrame:
        return self.results[self.results["batch"] == POOLED]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    order = np.argsort(p_values, kind="stable")
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _load(run_dirs: Iterable[Path], warnings: list[str]) -> list[Run]:
    runs = []
    for run_dir in run_dirs:
        try:
            runs.append(load_run(run_dir))
        except SkippedRun as reason:
            warnings.append(f"skipped {run_dir}: {reason}")
    by_key: dict[tuple[str, str], Run] = {}
    for run in runs:
        key = (run.config, run.batch)
        if key in by_key:
            old = by_key[key]
            keep, drop = (run, old) if (run.created or "") >= (old.created or "") else (old, run)
            warnings.append(f"duplicate run of {run.config} on {run.batch}: kept {keep.path}, ignored {drop.path}")
            by_key[key] = keep
        else:
            by_key[key] = run
    return list(by_key.values())


def _baselines(runs: list[Run], out_dir: Path, fewshot_dir, bootstrap: int, seed: int, warnings) -> list[Run]:
    """One baseline run per golden file the runs were scored on, over the union of their questions."""
    ids: dict[Path, set[str]] = defaultdict(set)
    for run in runs:
        golden = resolve_golden(run)
        if golden is None:
            warnings.append(f"no baseline for {run.path}: golden file {run.golden!r} not found")
            continue
        if run.per_question is None:
            warnings.append(f"no baseline questions from {run.path}: it has no per-question scores")
            continue
        ids[golden].update(str(r["id"]) for r in run.per_question)
    yesno = majority_yesno(fewshot_dir)
    out = []
    for golden, question_ids in sorted(ids.items()):
        target = out_dir / "baselines" / golden.stem
        out.append(baseline_run(golden, sorted(question_ids), target, yesno, bootstrap, seed))
    return out


def _run_rows(run: Run, specs: list[MetricSpec]) -> list[dict[str, Any]]:
    base = _describe(run.__dict__ | {"config": run.config}, run.accounting, run.questions)
    base.update(batch=run.batch, run_dir=str(run.path), git_hash=run.git_hash)
    counts = _group_counts(run.per_question)
    rows = []
    for spec in specs:
        if spec.name not in run.metrics:
            continue
        value = run.metrics[spec.name]
        ci = run.ci.get(spec.name) or [None, None]
        rows.append(_measure_row(base, spec, math.nan if value is None else float(value), ci, counts.get(spec.group)))
    return rows


def _measure_row(base: dict[str, Any], spec: MetricSpec, value: float, ci: Sequence[Any], n: int | None) -> dict:
    """One tidy row of ``results.csv``: the run's (or pooled config's) columns and one measure's value, CI and n."""
    return base | dict(
        question_type=spec.group,
        measure=spec.name,
        headline=spec.headline,
        ranking=spec.ranking,
        value=value,
        ci_low=ci[0],
        ci_high=ci[1],
        n=n,
    )


def _group_counts(per_question: list[dict[str, Any]] | None) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for row in per_question or []:
        for group in {k.split(".", 1)[0] for k in row if "." in k}:
            counts[group] += 1
    return counts


def _describe(attrs: dict[str, Any], accounting: dict[str, Any], questions: int) -> dict[str, Any]:
    cost = accounting.get("cost_usd")
    wall = accounting.get("wall_time_s")
    return dict(
        config=attrs["config"],
        model=attrs["model"],
        adapter=attrs.get("adapter"),
        shots=attrs.get("shots"),
        selection=attrs.get("selection"),
        wiki=attrs.get("wiki"),
        task=attrs.get("task"),
        parse_failure_rate=accounting.get("parse_failure_rate"),
        prompt_tokens=accounting.get("prompt_tokens"),
        completion_tokens=accounting.get("completion_tokens"),
        cost_usd=cost,
        usd_per_100q=100 * cost / questions if cost is not None and questions else None,
        wall_time_s=wall,
        s_per_question=wall / questions if wall is not None and questions else None,
        questions_per_minute=accounting.get("questions_per_minute"),
        questions=questions,
    )


def _pooled_accounting(runs: list[Run]) -> dict[str, Any]:
    def total(key: str) -> float | None:
        values = [r.accounting.get(key) for r in runs]
        return None if any(v is None for v in values) else float(sum(values))

    out: dict[str, Any] = {k: total(k) for k in ("prompt_tokens", "completion_tokens", "cost_usd", "wall_time_s")}
    requests = [r.accounting.get("requests") or 0 for r in runs]
    rates = [r.accounting.get("parse_failure_rate") for r in runs]
    if all(v is not None for v in rates):
        out["parse_failure_rate"] = (
            float(np.average(rates, weights=requests)) if sum(requests) else float(np.mean(rates))
        )
    questions = sum(r.questions for r in runs)
    if out["wall_time_s"]:
        out["questions_per_minute"] = round(60 * questions / out["wall_time_s"], 2)
    return out


def _pooled_questions(runs: list[Run]) -> list[dict[str, Any]]:
    """Per-question records of all runs, keyed by (batch, golden index) so that batches never collide."""
    return [{**row, "index": f"{run.batch}#{row['index']}"} for run in runs for row in run.per_question or []]


def _pooled_rows(config: str, runs: list[Run], rows, resampled, specs) -> list[dict[str, Any]]:
    names = [s.name for s in specs if any(s.name in r.metrics for r in runs)]
    first = runs[0]
    base = _describe(first.__dict__ | {"config": config}, _pooled_accounting(runs), sum(r.questions for r in runs))
    base.update(batch=POOLED, run_dir=";".join(str(r.path) for r in runs))
    base["git_hash"] = ";".join(sorted({r.git_hash or "" for r in runs}))
    out = []
    for spec in specs:
        if spec.name not in names:
            continue
        value, n = pooled_value(rows, spec.name)
        ci = resampled[spec.name].ci() if spec.ranking and spec.name in resampled else (None, None)
        out.append(_measure_row(base, spec, value, ci, n))
    return out


def _choose_reference(configs: Sequence[str], reference: str | None) -> str | None:
    if reference is None:
        return BASELINE_MODEL if BASELINE_MODEL in configs else (configs[0] if configs else None)
    if reference in configs:
        return reference
    matches = [c for c in configs if reference in c]
    if len(matches) == 1:
        return matches[0]
    raise ConfigError(
        f"report_reference={reference!r} matches {len(matches)} configurations; choose one of: {', '.join(configs)}"
    )


@dataclass
class _Reference:
    """The configuration every other one is compared with on the ``measures`` (the report's ranking
    measures): its pooled per-question rows and bootstrap resamples."""

    config: str | None
    measures: list[str]
    rows: list[dict[str, Any]] | None
    resampled: dict[str, Resampled]


def _config_statistics(config: str, runs: list[Run], reference: _Reference, specs, bootstrap: int, seed: int, warnings):
    """Pooled rows and paired rows (``config`` − reference per ranking measure) of one configuration."""
    if any(r.per_question is None for r in runs):
        missing = ", ".join(str(r.path) for r in runs if r.per_question is None)
        warnings.append(f"{config}: not pooled, no per-question scores in {missing}")
        return [], []
    rows = _pooled_questions(runs)
    resampled = resample_measures(rows, reference.measures, bootstrap, seed)
    pooled = _pooled_rows(config, runs, rows, resampled, specs)
    if config == reference.config or reference.rows is None:
        return pooled, []
    compared = []
    for name in reference.measures:
        a, b = resampled.get(name), reference.resampled.get(name)
        result = paired(a, b, rows, reference.rows, name, bootstrap, seed) if a and b else None
        if result is not None:
            compared.append(
                dict(
                    config=config,
                    reference=reference.config,
                    measure=name,
                    delta=result.delta,
                    ci_low=result.ci[0],
                    ci_high=result.ci[1],
                    p_bootstrap=result.p_bootstrap,
                    n=result.n_questions,
                )
            )
    return pooled, compared


def _paired_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[c for c in PAIRED_COLUMNS if c != "p_holm"])
    frame["p_holm"] = holm(frame["p_bootstrap"].tolist()) if len(frame) else []
    return frame[list(PAIRED_COLUMNS)]


def _check_sources(sources: Sequence[str | os.PathLike]) -> list[Path]:
    if not sources:
        raise ConfigError("report=: give a sweep directory (or a list of run directories)")
    paths = []
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise ConfigError(f"report={source}: no such directory")
        if not path.is_dir():
            raise ConfigError(f"report={source}: is a file, expected a directory holding run directories")
        if is_report_dir(path):
            raise ConfigError(f"report={source}: is a report's output; give the sweep directory holding the runs")
        paths.append(path)
    return paths


def build_report(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    reference: str | None = None,
    baselines: bool = True,
    fewshot_dir: str | os.PathLike | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    figures: bool = True,
) -> Report:
    """Collect every run under ``sources`` and write the report into ``out_dir`` (default ``SOURCE/report``).

    Raises :class:`ConfigError` for a missing source and :class:`BioQAError` when no usable run is found; run
    directories that cannot be used are skipped, each with a warning in ``report.md``.
    """
    sources = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    roots = _check_sources(sources)
    out_dir = Path(out_dir) if out_dir is not None else roots[0] / "report"
    warnings: list[str] = []
    run_dirs = find_run_dirs(roots, exclude=[out_dir])
    where = ", ".join(map(str, roots))
    if not run_dirs:
        raise BioQAError(f"report: no run directories (metrics.json) under {where}: nothing to report")
    runs = _load(run_dirs, warnings)
    if not runs:
        raise BioQAError(f"report: none of the {len(run_dirs)} run directories under {where} is usable: {warnings[0]}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / REPORT_MARKER).write_text("written by bioqa's sweep report: run directories below are its own\n")
    if baselines:
        runs += _baselines(runs, out_dir, fewshot_dir, bootstrap, seed, warnings)
    specs = measure_specs(k for r in runs for k in r.metrics)
    by_config: dict[str, list[Run]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: (r.model == BASELINE_MODEL, r.model, r.shots or 0, r.config, r.batch)):
        by_config[run.config].append(run)
    rows = [row for run in runs for row in _run_rows(run, specs)]
    chosen = _choose_reference(list(by_config), reference)
    reference_runs = by_config.get(chosen, []) if chosen else []
    ref_rows = None if any(r.per_question is None for r in reference_runs) else _pooled_questions(reference_runs)
    ranking = [s.name for s in specs if s.ranking]
    ref = _Reference(
        chosen, ranking, ref_rows, resample_measures(ref_rows, ranking, bootstrap, seed) if ref_rows else {}
    )
    paired_rows: list[dict[str, Any]] = []
    for config, config_runs in tqdm(by_config.items(), desc="pooling and pairing", unit="config", leave=False):
        pooled, compared = _config_statistics(config, config_runs, ref, specs, bootstrap, seed, warnings)
        rows += pooled
        paired_rows += compared
    results = pd.DataFrame(rows, columns=list(COLUMNS))
    paired_frame = _paired_frame(paired_rows)
    if len(paired_frame) and len(paired_frame) >= 0.05 * (bootstrap + 1):
        warnings.append(
            f"paired tests: with {bootstrap} resamples no p-value falls below 1/{bootstrap + 1}, so Holm over "
            f"{len(paired_frame)} comparisons can call no difference significant (p_holm >= 0.05 everywhere); "
            f"pass bootstrap={20 * len(paired_frame)} or more, or report fewer configurations, to test them"
        )
    for message in warnings:
        log.warning(message)
    report = Report(out_dir, results, paired_frame, specs, chosen, warnings, runs=runs)
    results.to_csv(out_dir / "results.csv", index=False)
    results.astype({"adapter": "string", "selection": "string", "git_hash": "string"}).to_parquet(
        out_dir / "results.parquet", index=False
    )
    paired_frame.to_csv(out_dir / "paired.csv", index=False)
    if figures:
        from bioqa.analysis.plots import draw_figures

        report.figures = draw_figures(report)
    from bioqa.analysis.markdown import write_markdown

    write_markdown(report, sources=roots, created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    log.info("sweep report of %d runs (%d configurations) in %s", len(runs), len(by_config), out_dir)
    return report


def report_from_config(cfg) -> Report:
    """``python evaluate.py report=DIR|[DIR, ...] [report_reference=CONFIG] [bootstrap=1000] [seed=0]``."""
    from omegaconf import OmegaConf

    listed = OmegaConf.to_container(cfg.report, resolve=True) if OmegaConf.is_list(cfg.report) else [cfg.report]
    sources = [str(source) for source in listed]  # a directory named 5 arrives as an int
    out = cfg.get("report_dir") or (None if len(sources) == 1 else Path(cfg.paths.output_dir) / "report")
    report = build_report(
        sources,
        out_dir=out,
        reference=cfg.get("report_reference"),
        baselines=cfg.get("report_baselines", True),
        fewshot_dir=Path(cfg.paths.shared_dir) / "fewshot",
        bootstrap=cfg.bootstrap,
        seed=cfg.seed,
    )
    print((report.out_dir / "report.md").read_text(encoding="utf-8"))
    return report
