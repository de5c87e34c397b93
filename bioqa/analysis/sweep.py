"""Aggregate a Hydra multirun (one run directory per combination) into a summary table (CSV + markdown)."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

#: Columns of the summary, in order; a measure absent from every run is left out.
HEADLINE = (
    "yesno.acc",
    "yesno.macro_f1",
    "factoid.strict_acc",
    "factoid.lenient_acc",
    "factoid.mrr",
    "list.precision",
    "list.recall",
    "list.f1",
    "ideal.rouge2_f1",
    "ideal.rouge_su4_f1",
    "documents.MAP",
    "snippets.MF1",
    "accounting.parse_failure_rate",
    "accounting.errors",
    "accounting.cost_usd",
    "accounting.questions_per_minute",
)


def _overrides(run_dir: Path) -> dict[str, str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    items = yaml.safe_load(path.read_text()) or []
    return dict(item.split("=", 1) for item in items if "=" in item and not item.startswith("hydra"))


def collect_runs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per run directory under ``sweep_dir`` that holds a ``metrics.json``."""
    rows = []
    for metrics_path in sorted(Path(sweep_dir).glob("*/metrics.json"), key=lambda p: p.parent.name):
        metrics = json.loads(metrics_path.read_text())
        row: dict[str, Any] = {"run": metrics_path.parent.name, **_overrides(metrics_path.parent)}
        row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) or v is None})
        rows.append(row)
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def write_summary(sweep_dir: str | Path, columns: tuple[str, ...] = HEADLINE) -> list[dict[str, Any]]:
    """Write ``summary.csv`` and ``summary.md`` into ``sweep_dir``; returns the rows."""
    sweep_dir = Path(sweep_dir)
    rows = collect_runs(sweep_dir)
    if not rows:
        log.warning("no metrics.json found under %s: no summary written", sweep_dir)
        return rows
    keys = [k for k in rows[0] if k not in columns and not k.startswith(("accounting.", "ci.")) and "." not in k]
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
