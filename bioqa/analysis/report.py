"""The sweep report: ``python evaluate.py report=SWEEP_DIR`` → ``SWEEP_DIR/report/``.

``results.csv`` / ``results.parquet`` (tidy: one row per run × measure, plus ``batch == "pooled"`` rows per
configuration), ``paired.csv`` (differences against a reference configuration), ``report.md`` (per-batch and pooled
tables, best configuration per measure in bold, warnings) and PNG figures (see :mod:`bioqa.analysis.plots`).

A configuration is its fingerprint: everything that determined its answers (:func:`bioqa.analysis.runs.load_run`);
two runs with the same fingerprint on the same batch and questions are duplicates (the newest is kept, said so),
any other difference is another configuration, labelled by the settings that tell it apart.

Comparisons use only comparable numbers: the pooled rows, rankings, figures and paired tests of configurations that
answered different questions use the questions every one of them answered (``n`` says how many), or, when they share
none, one comparison group per question set; the baselines answer exactly the questions of their group.

Pooling across batches uses the per-question scores of all the configuration's runs (the evaluator's statistic over
the union of questions, not a mean of batch means); its 95% CI resamples those questions (ranking measures only:
the other pooled measures carry no CI, which keeps a 200-configuration report within seconds). Paired differences pair
questions by (batch, question); their CI is the paired bootstrap's, their p-value an exact permutation test on at
most :data:`~bioqa.analysis.model.EXACT_MAX_QUESTIONS` questions and the paired bootstrap's above; p-values are
Holm-corrected across every (configuration, measure) comparison of the report.

The report is written into a temporary directory beside its destination and moved into place whole: the directory
never holds a file of an earlier report.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from bioqa.analysis.baselines import baseline_run, majority_yesno
from bioqa.analysis.markdown import Overview, write_markdown
from bioqa.analysis.measures import exact_permutation_p, measure_specs, paired, pooled_value, resample_measures
from bioqa.analysis.model import (
    ALPHA,
    BASELINE_MODEL,
    COLUMNS,
    EXACT_MAX_QUESTIONS,
    PAIRED_COLUMNS,
    POOLED,
    Comparison,
)
from bioqa.analysis.plots import draw_figures
from bioqa.analysis.runs import (
    REPORT_MARKER,
    Run,
    SkippedRun,
    find_run_dirs,
    is_report_dir,
    label_runs,
    load_run,
    resolve_golden,
)
from bioqa.config.evaluate import ReportConfig
from bioqa.errors import BioQAError, ConfigError
from bioqa.evaluation.registry import MetricSpec
from bioqa.evaluation.stats import Resampled

log = logging.getLogger(__name__)


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
    comparisons: list[Comparison] = field(default_factory=list)

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
    """Usable runs; of runs with one fingerprint on one batch, the newest per question set (the others are
    duplicates, said so); the same fingerprint on other questions of a batch becomes a configuration of its own."""
    by_key: dict[tuple[str, str], dict[frozenset[str], Run]] = defaultdict(dict)
    for run_dir in run_dirs:
        try:
            run = load_run(run_dir)
        except SkippedRun as reason:
            warnings.append(f"skipped {run_dir}: {reason}")
            continue
        same = by_key[(run.fingerprint, run.batch)]
        questions = run.question_keys()
        old = same.get(questions)
        if old is None:
            same[questions] = run
            continue
        keep, drop = (run, old) if (run.created or "") >= (old.created or "") else (old, run)
        warnings.append(
            f"duplicate run of {run.base_label()} on {run.batch} (same fingerprint {run.fingerprint[:8]}, same "
            f"{run.questions} questions): kept {keep.path}, ignored {drop.path}"
        )
        same[questions] = keep
    runs = []
    for variants in by_key.values():
        for run in variants.values():
            if len(variants) > 1:  # the same settings on other questions of the batch: kept apart, never pooled
                run.settings = {**run.settings, "questions": run.questions}
            runs.append(run)
    return runs


def _comparisons(by_config: dict[str, list[Run]]) -> list[Comparison]:
    """The groups of configurations compared with each other: one over the questions every pooled configuration
    answered, or — when they share none — one per question set."""
    sets = {
        config: frozenset().union(*(r.question_keys() for r in runs))
        for config, runs in by_config.items()
        if all(r.per_question is not None for r in runs)
    }
    if not sets:
        return []
    common = frozenset.intersection(*sets.values())
    if common:
        return [Comparison("all", list(sets), common, restricted=len(set(sets.values())) > 1)]
    groups: dict[frozenset[str], list[str]] = {}
    for config, questions in sets.items():
        groups.setdefault(questions, []).append(config)
    return [Comparison(f"Q{i}", configs, questions) for i, (questions, configs) in enumerate(groups.items(), 1)]


def _baselines(
    comparisons: list[Comparison], by_config, out_dir: Path, staging: Path, fewshot_dir, bootstrap, seed, warnings
) -> list[Run]:
    """One baseline run per comparison group and golden file, on exactly the group's questions of that file."""
    yesno = majority_yesno(fewshot_dir)
    out = []
    for comparison in comparisons:
        ids: dict[Path, set[str]] = defaultdict(set)
        for config in comparison.configs:
            for run in by_config[config]:
                golden = resolve_golden(run)
                if golden is None:
                    warnings.append(f"no baseline for {run.path}: golden file {run.golden!r} not found")
                    continue
                ids[golden].update(
                    str(r["id"]) for r in run.per_question or [] if f"{run.batch}#{r['index']}" in comparison.questions
                )
        where = Path("baselines") if len(comparisons) == 1 else Path("baselines") / comparison.name
        for golden, question_ids in sorted(ids.items()):
            if not question_ids:
                continue
            run = baseline_run(golden, sorted(question_ids), staging / where / golden.stem, yesno, bootstrap, seed)
            run.path = out_dir / where / golden.stem  # where it will be once the report is moved into place
            if len(comparisons) > 1:
                run.settings = {"run.model": BASELINE_MODEL, "comparison": comparison.name}
            out.append(run)
    return out


def _member_counts(per_question: list[dict[str, Any]] | None, specs: list[MetricSpec]) -> dict[str, int]:
    """Questions each measure counts: those whose per-question row carries the measure's member key."""
    keys: Counter[str] = Counter(k for r in per_question or [] for k in r)
    return {s.name: keys[s.member] for s in specs}


def _run_rows(run: Run, specs: list[MetricSpec], comparison: str | None) -> list[dict[str, Any]]:
    base = _describe(run, run.config, run.accounting, run.questions, comparison)
    base.update(batch=run.batch, run_dir=str(run.path), git_hash=run.git_hash)
    counts = _member_counts(run.per_question, specs) if run.per_question is not None else {}
    rows = []
    for spec in specs:
        if spec.name not in run.metrics:
            continue
        value, ci = run.metrics[spec.name], run.ci.get(spec.name) or [None, None]
        n = counts.get(spec.name)
        if n == 0:  # no question of the measure's type: no value, never a "best" 0.000
            value, ci = None, [None, None]
        rows.append(_measure_row(base, spec, math.nan if value is None else float(value), ci, n))
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


def _describe(run: Run, config: str, accounting: dict[str, Any], questions: int, comparison: str | None) -> dict:
    cost = accounting.get("cost_usd")
    wall = accounting.get("wall_time_s")
    return dict(
        config=config,
        model=run.model,
        adapter=run.adapter,
        shots=run.shots,
        selection=run.selection,
        wiki=run.wiki,
        task=run.task,
        parse_failure_rate=accounting.get("parse_failure_rate"),
        prompt_tokens=accounting.get("prompt_tokens"),
        completion_tokens=accounting.get("completion_tokens"),
        cost_usd=cost,
        usd_per_100q=100 * cost / questions if cost is not None and questions else None,
        wall_time_s=wall,
        s_per_question=wall / questions if wall is not None and questions else None,
        questions_per_minute=accounting.get("questions_per_minute"),
        questions=questions,
        series=run.series,
        fingerprint=run.fingerprint,
        comparison=comparison,
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


def _pooled_questions(runs: list[Run], questions: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """Per-question records of all runs, keyed by (batch, golden index) so that batches never collide; only
    ``questions`` when given (the comparison's common questions)."""
    rows = [{**row, "index": f"{run.batch}#{row['index']}"} for run in runs for row in run.per_question or []]
    return rows if questions is None else [r for r in rows if r["index"] in questions]


def _pooled_rows(config: str, runs: list[Run], rows, resampled, specs, comparison: str) -> list[dict[str, Any]]:
    names = [s.name for s in specs if any(s.name in r.metrics for r in runs)]
    base = _describe(runs[0], config, _pooled_accounting(runs), sum(r.questions for r in runs), comparison)
    base.update(batch=POOLED, run_dir=";".join(str(r.path) for r in runs))
    base["git_hash"] = ";".join(sorted({r.git_hash or "" for r in runs}))
    out = []
    for spec in specs:
        if spec.name not in names:
            continue
        value, n = pooled_value(rows, spec.name)
        value = value if n else math.nan  # no question of the measure's type (the evaluator would say 0.0)
        ci = resampled[spec.name].ci() if spec.ranking and spec.name in resampled else (None, None)
        out.append(_measure_row(base, spec, value, ci, n))
    return out


def _choose_reference(configs: Sequence[str], reference: str | None, baseline: str | None = None) -> str | None:
    if reference is None:
        return baseline or (configs[0] if configs else None)
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
    """The configuration every other one of a comparison is compared with on the ``measures`` (the report's
    ranking measures): its pooled per-question rows and bootstrap resamples."""

    config: str | None
    measures: list[str]
    rows: list[dict[str, Any]] | None
    resampled: dict[str, Resampled]


def _paired_row(config: str, reference: _Reference, name: str, result, rows, comparison: str) -> dict[str, Any]:
    exact = result.n_questions <= EXACT_MAX_QUESTIONS
    p = exact_permutation_p(rows, reference.rows, name) if exact else result.p_bootstrap
    return dict(
        config=config,
        reference=reference.config,
        measure=name,
        delta=result.delta,
        ci_low=result.ci[0],
        ci_high=result.ci[1],
        p_bootstrap=result.p_bootstrap,
        test="exact permutation" if exact else "paired bootstrap",
        p=p,
        n=result.n_questions,
        comparison=comparison,
    )


def _config_statistics(config, runs, reference: _Reference, comparison: Comparison, specs, bootstrap, seed):
    """Pooled rows and paired rows (``config`` − reference per ranking measure) of one configuration."""
    rows = _pooled_questions(runs, comparison.questions if comparison.restricted else None)
    resampled = resample_measures(rows, reference.measures, bootstrap, seed)
    pooled = _pooled_rows(config, runs, rows, resampled, specs, comparison.name)
    if config == reference.config or reference.rows is None:
        return pooled, []
    compared = []
    for name in reference.measures:
        a, b = resampled.get(name), reference.resampled.get(name)
        result = paired(a, b, rows, reference.rows, name, bootstrap, seed) if a and b else None
        if result is not None:
            compared.append(_paired_row(config, reference, name, result, rows, comparison.name))
    return pooled, compared


def _paired_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[c for c in PAIRED_COLUMNS if c != "p_holm"])
    frame["p_holm"] = holm(frame["p"].tolist()) if len(frame) else []
    return frame[list(PAIRED_COLUMNS)]


def resolution_note(paired_frame: pd.DataFrame, bootstrap: int) -> str:
    """What the resamples and the numbers of questions can and cannot resolve (one line of ``report.md``)."""
    m = len(paired_frame)
    if not m:
        return f"{bootstrap} resamples per CI; no paired test was run."
    smallest = [
        2.0 ** (1 - n) if test == "exact permutation" else 1 / (bootstrap + 1)
        for n, test in zip(paired_frame["n"], paired_frame["test"], strict=True)
    ]
    needed = ALPHA / m
    reachable = 0  # Holm with every test at its smallest possible p: the most rejections there can be
    for rank, p in enumerate(sorted(smallest)):
        if p >= ALPHA / (m - rank):
            break
        reachable += 1
    exact = paired_frame[paired_frame["test"] == "exact permutation"]
    floor = 1 / (bootstrap + 1)
    parts = [f"{bootstrap} resamples: a paired-bootstrap p is never below 1/{bootstrap + 1} = {floor:.4f}"]
    if len(exact):
        n = int(exact["n"].min())
        parts.append(
            f"tests on at most {EXACT_MAX_QUESTIONS} questions are exact permutation tests, whose p is never below "
            f"2/2^n (n = {n}: {2.0 ** (1 - n):.4f})"
        )
    parts.append(
        f"Holm over {m} comparisons rejects nothing until one p is below {needed:.4f}, so at most {reachable} of the "
        f"{m} comparisons can be called significant, whatever the data; intervals of width 0 on few questions are no "
        "certainty"
    )
    return "Resolution: " + "; ".join(parts) + "."


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


def _check_out_dir(out_dir: Path) -> None:
    """The destination is replaced whole: refuse one that holds anything but an earlier report."""
    if out_dir.is_file() or (out_dir.is_dir() and any(out_dir.iterdir()) and not is_report_dir(out_dir)):
        raise ConfigError(f"report_dir={out_dir}: exists and is not a report's output; choose another directory")


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` (an earlier report, or nothing) by ``staging``."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        out_dir.replace(old / out_dir.name)
    staging.replace(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _by_config(runs: list[Run]) -> dict[str, list[Run]]:
    by_config: dict[str, list[Run]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: (r.model == BASELINE_MODEL, r.model, r.shots or 0, r.config, r.batch)):
        by_config[run.config].append(run)
    return by_config


def _pool_and_pair(
    by_config, comparisons: list[Comparison], specs, bootstrap: int, seed: int, warnings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pooled rows of every configuration and paired rows against each comparison group's reference."""
    ranking = [s.name for s in specs if s.ranking]
    pooled_rows: list[dict[str, Any]] = []
    paired_rows: list[dict[str, Any]] = []
    compared = {c for comparison in comparisons for c in comparison.configs}
    for config, runs in by_config.items():
        if config not in compared:
            missing = ", ".join(str(r.path) for r in runs if r.per_question is None)
            warnings.append(f"{config}: not pooled, no per-question scores in {missing}")
    for comparison in comparisons:
        chosen = comparison.reference
        ref_rows = _pooled_questions(by_config[chosen], comparison.questions if comparison.restricted else None)
        ref = _Reference(chosen, ranking, ref_rows, resample_measures(ref_rows, ranking, bootstrap, seed))
        for config in tqdm(comparison.configs, desc="pooling and pairing", unit="config", leave=False):
            pooled, paired_ = _config_statistics(config, by_config[config], ref, comparison, specs, bootstrap, seed)
            pooled_rows += pooled
            paired_rows += paired_
    return pooled_rows, paired_rows


def _with_baselines(comparisons: list[Comparison], runs: list[Run]) -> list[Comparison]:
    """The comparison groups again, after the baselines were added and every run (re)labelled."""
    by_fingerprint = {r.fingerprint: r.config for r in runs}
    out = []
    for comparison in comparisons:
        members = {r.fingerprint for r in runs if r.config in comparison.configs}
        members |= {
            r.fingerprint
            for r in runs
            if r.model == BASELINE_MODEL and r.settings.get("comparison", comparison.name) == comparison.name
        }
        configs = [by_fingerprint[f] for f in dict.fromkeys(r.fingerprint for r in runs if r.fingerprint in members)]
        out.append(Comparison(comparison.name, configs, comparison.questions, comparison.restricted))
    return out


def _set_references(comparisons: list[Comparison], by_config: dict[str, list[Run]], reference: str | None) -> None:
    """Each group's reference: ``reference`` where it names one of the group's configurations, else its baseline (or
    first configuration); a ``reference`` that names no configuration at all is an error listing them."""
    ordered = {c: None for c in by_config}
    for comparison in comparisons:
        comparison.configs = [c for c in ordered if c in set(comparison.configs)]
        comparison.batches = sorted({q.split("#", 1)[0] for q in comparison.questions})
        baseline = next((c for c in comparison.configs if by_config[c][0].model == BASELINE_MODEL), None)
        if len(comparisons) == 1:
            comparison.reference = _choose_reference(comparison.configs, reference, baseline)
            continue
        try:
            comparison.reference = _choose_reference(comparison.configs, reference, baseline)
        except ConfigError:
            comparison.reference = _choose_reference(comparison.configs, None, baseline)
    if reference is not None and len(comparisons) > 1 and not any(reference in c for c in ordered):
        _choose_reference(list(ordered), reference)


def _unranked_batches(runs: list[Run]) -> list[str]:
    """Batches whose runs answered different questions: their table is not a ranking."""
    sets: dict[str, set[frozenset[str]]] = defaultdict(set)
    for run in runs:
        if run.per_question is not None:
            sets[run.batch].add(run.question_keys())
    return sorted(batch for batch, found in sets.items() if len(found) > 1)


def _write(runs, comparisons, reference, staging, out_dir, roots, bootstrap, seed, figures, warnings) -> Report:
    specs = measure_specs(k for r in runs for k in r.metrics)
    by_config = _by_config(runs)
    _set_references(comparisons, by_config, reference)
    group_of = {c: comparison.name for comparison in comparisons for c in comparison.configs}
    rows = [row for run in runs for row in _run_rows(run, specs, group_of.get(run.config))]
    pooled_rows, paired_rows = _pool_and_pair(by_config, comparisons, specs, bootstrap, seed, warnings)
    results = pd.DataFrame(rows + pooled_rows, columns=list(COLUMNS))
    paired_frame = _paired_frame(paired_rows)
    bootstrapped = int((paired_frame["test"] == "paired bootstrap").sum()) if len(paired_frame) else 0
    if bootstrapped and len(paired_frame) >= 0.05 * (bootstrap + 1):
        warnings.append(
            f"paired tests: with {bootstrap} resamples no p-value falls below 1/{bootstrap + 1}, so Holm over "
            f"{len(paired_frame)} comparisons can call no difference significant (p_holm >= 0.05 everywhere); "
            f"pass bootstrap={20 * len(paired_frame)} or more, or report fewer configurations, to test them"
        )
    for message in warnings:
        log.warning(message)
    results.to_csv(staging / "results.csv", index=False)
    results.astype({"adapter": "string", "selection": "string", "git_hash": "string"}).to_parquet(
        staging / "results.parquet", index=False
    )
    paired_frame.to_csv(staging / "paired.csv", index=False)
    ranking = [s.name for s in specs if s.ranking]
    drawn: dict[str, Path] = {}
    for comparison in comparisons if figures else []:  # one set of figures per group (no suffix for a single one)
        pooled = results[(results["batch"] == POOLED) & (results["comparison"] == comparison.name)]
        pairs = paired_frame[paired_frame["comparison"] == comparison.name]
        suffix = f"_{comparison.name}" if len(comparisons) > 1 else ""
        drawn |= draw_figures(pooled, pairs, ranking, comparison.reference, staging, suffix)
    real = [r for r in runs if r.model != BASELINE_MODEL]
    overview = Overview(
        sources=[str(s) for s in roots],
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        runs=len(real),
        configs=len({r.config for r in real}),
        batches=sorted({r.batch for r in real}),
        comparisons=comparisons,
        resolution=resolution_note(paired_frame, bootstrap),
        figures=list(drawn),
        warnings=warnings,
        unranked_batches=_unranked_batches(runs),
    )
    write_markdown(staging / "report.md", results, paired_frame, ranking, overview)
    chosen = comparisons[0].reference if comparisons else None
    figures_at = {name: out_dir / path.name for name, path in drawn.items()}
    return Report(out_dir, results, paired_frame, specs, chosen, warnings, figures_at, runs, comparisons)


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
    """Collect every run under ``sources`` and write the report into ``out_dir`` (default ``SOURCE/report``),
    replacing an earlier report there whole.

    Raises :class:`ConfigError` for a missing source or a destination that is not a report and :class:`BioQAError`
    when no usable run is found; run directories that cannot be used are skipped, each with a warning in
    ``report.md``.
    """
    sources = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    roots = _check_sources(sources)
    out_dir = Path(out_dir) if out_dir is not None else roots[0] / "report"
    _check_out_dir(out_dir)
    warnings: list[str] = []
    run_dirs = find_run_dirs(roots, exclude=[out_dir])
    where = ", ".join(map(str, roots))
    if not run_dirs:
        raise BioQAError(f"report: no run directories (metrics.json) under {where}: nothing to report")
    runs = _load(run_dirs, warnings)
    if not runs:
        raise BioQAError(f"report: none of the {len(run_dirs)} run directories under {where} is usable: {warnings[0]}")
    label_runs(runs)
    comparisons = _comparisons(_by_config(runs))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
    try:
        (staging / REPORT_MARKER).write_text("written by bioqa's sweep report: run directories below are its own\n")
        if baselines:
            by_config = _by_config(runs)
            runs += _baselines(comparisons, by_config, out_dir, staging, fewshot_dir, bootstrap, seed, warnings)
            label_runs(runs)
            comparisons = _with_baselines(comparisons, runs)
        report = _write(runs, comparisons, reference, staging, out_dir, roots, bootstrap, seed, figures, warnings)
        _move_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("sweep report of %d runs (%d configurations) in %s", len(runs), len(_by_config(runs)), out_dir)
    return report


def report_from_config(settings: ReportConfig, output_dir: str | Path, shared_dir: str | Path) -> Report:
    """``python evaluate.py report=DIR|[DIR, ...] [report_reference=CONFIG] [bootstrap=1000] [seed=0]``, from its
    parsed settings; several sources without ``report_dir`` report into ``output_dir``/report."""
    sources = settings.report
    out = settings.report_dir or (None if len(sources) == 1 else Path(output_dir) / "report")
    report = build_report(
        sources,
        out_dir=out,
        reference=settings.report_reference,
        baselines=settings.report_baselines,
        fewshot_dir=Path(shared_dir) / "fewshot",
        bootstrap=settings.bootstrap,
        seed=settings.seed,
    )
    print((report.out_dir / "report.md").read_text(encoding="utf-8"))
    return report
