"""Experiment loggers shared by train.py and infer.py (``conf/logger/*.yaml``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import WandbLogger


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
    offline unless a W&B API key is configured (see :func:`wandb_mode`)."""
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        project=project,
        name=name,
        group=group,
        tags=list(tags),
        save_dir=str(save_dir),
        mode=wandb_mode(mode),
        **kwargs,
    )
