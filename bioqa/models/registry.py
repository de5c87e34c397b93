"""Build a backend from a ``conf/model/*.yaml`` entry (its ``backend`` node names the class with ``_target_``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.utils import instantiate

from bioqa.models.base import Backend
from bioqa.models.cache import CachedBackend, CompletionCache


def build_backend(cfg_model: Mapping[str, Any], cache_path: str | Path | None = None) -> Backend:
    """Instantiate ``cfg_model.backend``; behind the SQLite completion cache at ``cache_path`` when given."""
    if "backend" not in cfg_model:
        raise KeyError(f"model config {cfg_model.get('name', '?')!r} has no 'backend' node with a _target_")
    backend = instantiate(cfg_model["backend"], _convert_="all")
    if not isinstance(backend, Backend):
        raise TypeError(f"model.backend built a {type(backend).__name__}, not a bioqa Backend")
    return backend if cache_path is None else CachedBackend(backend, CompletionCache(cache_path))
