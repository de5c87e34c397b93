"""Experiment loggers shared by train.py and infer.py (``conf/logger/*.yaml``)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import WandbLogger

log = logging.getLogger(__name__)


def wandb_mode(mode: str | None = None) -> str:
    """``mode`` if given, else ``WANDB_MODE``, else online when ``WANDB_API_KEY`` is set and offline otherwise."""
    return mode or os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")


def wandb_logger(
    project: str = "bioqa",
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] = (),
    save_dir: str | os.PathLike = ".",
    mode: str | None = None,
    **kwargs: Any,
) -> WandbLogger:
    """A Lightning ``WandbLogger`` (its ``.experiment`` is a plain wandb run, usable outside Lightning too);
    offline unless a W&B API key is configured (see :func:`wandb_mode`). An offline run prints nothing of its own
    (W&B's ~30-line run summary); :func:`log_run` says in one line where it is and how to sync it."""
    import wandb

    Path(save_dir).mkdir(parents=True, exist_ok=True)
    mode = wandb_mode(mode)
    if mode == "offline":
        kwargs.setdefault("settings", wandb.Settings(silent=True))
    logger = WandbLogger(
        project=project, name=name, group=group, tags=list(tags), save_dir=str(save_dir), mode=mode, **kwargs
    )
    # Lightning always passes `anonymous` (None by default), which wandb >= 0.19 warns about on every run.
    getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    return logger


def say_where_offline_runs_are(loggers: Sequence[Any]) -> None:
    """One line per offline W&B run: where it is and how to upload it."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and getattr(logger.experiment, "offline", False):
            where = logger.experiment.settings.sync_dir
            log.info("W&B offline run saved in %s; upload it with: wandb sync %s", where, where)


#: Where ``wandb_logger``'s ``**kwargs`` go (checked up front by :func:`bioqa.config.common.check_target_arguments`).
wandb_logger.forwards_kwargs_to = ("pytorch_lightning.loggers.WandbLogger", "wandb.init")  # type: ignore[attr-defined]


def build_loggers(cfg_logger: Mapping[str, Any] | None) -> list[Any]:
    """The experiment loggers of a ``conf/logger/*.yaml`` option: every entry with a ``_target_`` (plain settings
    such as ``log_texts`` sit beside them)."""
    from hydra.utils import instantiate

    specs = (cfg_logger or {}).values()
    return [instantiate(spec) for spec in specs if isinstance(spec, Mapping) and "_target_" in spec]


def tracker_key(measure: str) -> str:
    """``yesno.macro_f1`` → ``yesno/macro_f1``: W&B groups panels by the part before the slash."""
    return measure.replace(".", "/", 1)


def run_summary(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Every numeric metric of a run, and the bounds of its 95% CI (``…_ci_low``/``…_ci_high``), keyed for trackers."""
    summary = {
        tracker_key(k): float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    for measure, bounds in (metrics.get("ci") or {}).items():
        if bounds and None not in bounds:
            summary[tracker_key(measure) + "_ci_low"], summary[tracker_key(measure) + "_ci_high"] = map(float, bounds)
    return summary


def per_question_table(
    rows: Sequence[Mapping[str, Any]], texts: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of the per-question table: id, type and every per-question score; with ``texts`` (only when
    the user asked for ``logger.log_texts=true``) also the question, the system's answers and the golden ones."""
    measures = sorted({k for row in rows for k in row if k not in ("id", "type")})
    text_columns = sorted({k for t in (texts or {}).values() for k in t})
    columns = ["id", "type", *measures, *text_columns]
    table = [
        [
            row.get("id"),
            row.get("type"),
            *(row.get(m) for m in measures),
            *(_text(texts[row["id"]].get(c)) if texts and row.get("id") in texts else None for c in text_columns),
        ]
        for row in rows
    ]
    return columns, table


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def log_run(
    loggers: Sequence[Any],
    config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    per_question: Sequence[Mapping[str, Any]] = (),
    texts: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Send a finished run to its loggers: the resolved config, every metric with its CI bounds, and (W&B) the
    per-question table. Question and answer texts go only where ``texts`` is given: bioqa's users self-host so that
    sensitive text never reaches a third party."""
    summary = run_summary(metrics)
    for logger in loggers:
        logger.log_hyperparams(dict(config))
        logger.log_metrics(summary)
        experiment = getattr(logger, "experiment", None) if isinstance(logger, WandbLogger) else None
        if experiment is not None and per_question:
            import wandb

            columns, rows = per_question_table(per_question, texts)
            experiment.log({"per_question": wandb.Table(columns=columns, data=rows)})
        logger.finalize("success")
        if experiment is not None:
            experiment.finish()
    say_where_offline_runs_are(loggers)
