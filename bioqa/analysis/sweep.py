"""Aggregate a Hydra multirun (one run directory per combination) into a summary table (CSV + markdown).

A row's settings come from what each run recorded — Hydra's resolved group choices and config
(``.hydra/hydra.yaml``, ``.hydra/config.yaml``) and bioqa's ``run_identity.json`` (what actually ran, e.g. the
shot pool after a fallback) — never from override strings. The setting columns are the keys the sweep
overrode plus every setting that differs between its runs, so no two rows that ran differently look alike.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bioqa.evaluation.registry import headline_metrics
from bioqa.rundir import HYDRA_CONFIG, HYDRA_OVERRIDES, HYDRA_RUNTIME, IDENTITY, METRICS, read_metrics
from bioqa.runs import flatten

log = logging.getLogger(__name__)

#: The accounting columns of the summary, after the measures.
ACCOUNTING_COLUMNS = (
    "accounting.parse_failure_rate",
    "accounting.errors",
    "accounting.cost_usd",
    "accounting.questions_per_minute",
)


def headline_measures() -> tuple[str, ...]:
    """The registry's headline measures, answers before phase A."""
    specs = headline_metrics()
    return (*(s.name for s in specs if s.phase != "A"), *(s.name for s in specs if s.phase == "A"))


def summary_columns() -> tuple[str, ...]:
    """Columns of the summary, in order (:func:`headline_measures`, then accounting); a measure absent from every
    run is left out."""
    return (*headline_measures(), *ACCOUNTING_COLUMNS)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


def _cell(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else value


def group_choices(run_dir: str | Path) -> dict[str, Any]:
    """The config group options a run was composed from (``model``, ``prompt``, ``prompt.templates``, …)."""
    hydra = _yaml(Path(run_dir) / HYDRA_RUNTIME) or {}
    choices = hydra.get("hydra", {}).get("runtime", {}).get("choices") or {}
    return {group.replace("/", "."): option for group, option in choices.items() if not group.startswith("hydra")}


def run_settings(run_dir: str | Path) -> dict[str, Any]:
    """What a run directory recorded about its settings, as dotted keys: group choices, config leaves
    (``prompt.selection``) and the run identity (which wins where it differs from the config, e.g.
    ``prompt.pool`` after a fallback; ``backend.model_id``)."""
    run_dir = Path(run_dir)
    settings = {**flatten(_yaml(run_dir / HYDRA_CONFIG) or {}), **group_choices(run_dir)}
    identity_path = run_dir / IDENTITY
    if identity_path.is_file():
        settings.update(flatten(json.loads(identity_path.read_text(encoding="utf-8")).get("identity", {})))
    return {key: _cell(value) for key, value in settings.items()}


def overridden_keys(run_dir: str | Path) -> list[str]:
    """The keys a run's command line set (``+``/``++``/``~`` stripped; Hydra's own left out), in order."""
    items = _yaml(Path(run_dir) / HYDRA_OVERRIDES) or []
    keys = [item.split("=", 1)[0].lstrip("+~") for item in items if "=" in item]
    return [key for key in keys if key != "hydra" and not key.startswith(("hydra.", "hydra/"))]


def setting_columns(settings: list[dict[str, Any]], overridden: list[str], groups: set[str]) -> list[str]:
    """Overridden keys first, then every other setting whose value differs between runs — except the leaves of
    a config group (one of ``groups``) whose choice is already a column: the choice names them."""
    columns = list(dict.fromkeys(key.replace("/", ".") for key in overridden))
    keys = dict.fromkeys(key for row in settings for key in row)
    varying = [key for key in keys if len({json.dumps(row.get(key), default=str) for row in settings}) > 1]
    named = tuple(f"{key}." for key in columns if key in groups)
    columns += [key for key in varying if key not in columns and not key.startswith(named)]
    return columns


def _collect(sweep_dir: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    paths = sorted(Path(sweep_dir).glob(f"*/{METRICS}"), key=lambda p: p.parent.name)
    settings = [run_settings(p.parent) for p in paths]
    overridden = [key for p in paths for key in overridden_keys(p.parent)]
    columns = setting_columns(settings, overridden, {group for p in paths for group in group_choices(p.parent)})
    rows = []
    for metrics_path, run in zip(paths, settings, strict=True):
        metrics = read_metrics(metrics_path.parent).flat()
        row: dict[str, Any] = {"run": metrics_path.parent.name, **{key: run.get(key) for key in columns}}
        row.update(
            {k: v for k, v in metrics.items() if k not in row and (isinstance(v, int | float | str) or v is None)}
        )
        rows.append(row)
    return columns, rows


def collect_runs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per run directory under ``sweep_dir`` that holds a ``metrics.json``: ``run``, the setting
    columns (see :func:`setting_columns`), then the run's scalar metrics."""
    return _collect(sweep_dir)[1]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def write_summary(sweep_dir: str | Path, columns: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Write ``summary.csv`` and ``summary.md`` into ``sweep_dir``; returns the rows."""
    sweep_dir = Path(sweep_dir)
    columns = summary_columns() if columns is None else columns
    settings, rows = _collect(sweep_dir)
    if not rows:
        log.warning("no metrics.json found under %s: no summary written", sweep_dir)
        return rows
    keys = ["run", *(k for k in settings if k not in columns)]
    keys += [c for c in columns if any(c in r for r in rows)]
    with (sweep_dir / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(r.get(k)) for k in keys) + " |" for r in rows]
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    log.info("sweep summary:\n%s", "\n".join(lines))
    return rows


class SweepSummaryCallback(Callback):
    """Hydra callback: after a multirun, write the summary table into the sweep directory."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        write_summary(config.hydra.sweep.dir)
