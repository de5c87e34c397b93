"""A Hydra callback (``conf/hydra/default.yaml``) that notes which directories a ``-m`` sweep is about to create, so
that a sweep refused before its first job leaves nothing behind (:func:`bioqa.errors.forget_unstarted_sweep`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bioqa.errors import note_sweep_dir


class UnstartedSweepCleanup(Callback):
    """Hydra's sweeper creates the sweep directory and writes ``multirun.yaml`` into it BEFORE it composes the
    jobs' configs; a bad sweep value (``-m model=a,typo``) then fails with only that file written."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir).absolute()  # resolved once: ${now:} is cached for the sweeper too
        note_sweep_dir(sweep_dir, [d for d in (sweep_dir, *sweep_dir.parents) if not d.exists()])
