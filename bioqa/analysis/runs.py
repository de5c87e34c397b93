"""Find and read finished run directories (what ``infer.py``/``evaluate.py`` wrote) for the sweep report.

A run directory is any directory holding ``metrics.json``, ``.hydra/config.yaml`` or ``provenance.json``. One that
cannot be used (no ``metrics.json``, a truncated or non-UTF-8 one, no scores) is skipped with a reason; the caller
records the reasons in the report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bioqa.analysis.measures import is_measure
from bioqa.rundir import (
    HYDRA_CONFIG,
    HYDRA_DIR,
    HYDRA_RUNTIME,
    METRICS,
    PER_QUESTION,
    PER_QUESTION_LEGACY,
    PROVENANCE,
    parse_metrics,
)

PER_QUESTION_FILES = (PER_QUESTION, PER_QUESTION_LEGACY)
REPORT_MARKER = ".bioqa_report"  # written into every report's output directory
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Run:
    """One scored run: its configuration (the columns a sweep varies), measures, CIs and per-question scores."""

    path: Path
    model: str
    batch: str
    golden: str | None = None
    adapter: str | None = None
    shots: int | None = None
    selection: str | None = None
    wiki: bool = False
    task: str = "phase_b"
    metrics: dict[str, float | None] = field(default_factory=dict)
    ci: dict[str, list[float | None]] = field(default_factory=dict)
    accounting: dict[str, Any] = field(default_factory=dict)
    per_question: list[dict[str, Any]] | None = None
    git_hash: str | None = None
    created: str | None = None
    cwd: str | None = None  # where the run was started (relative golden paths are relative to it)

    @property
    def config(self) -> str:
        """The label of the configuration (everything but the batch): one curve point / table row."""
        parts = [self.model + (f"+{Path(self.adapter).name}" if self.adapter else "")]
        if self.shots is not None:
            parts.append(f"{self.shots}-shot")
        if self.selection and self.selection != "first_n":
            parts.append(self.selection)
        if self.wiki:
            parts.append("wiki")
        if self.task != "phase_b":
            parts.append(self.task)
        return " ".join(parts)

    @property
    def questions(self) -> int:
        ids = {r.get("id") for r in self.per_question or []}
        return len(ids) or int(self.accounting.get("questions") or 0)


class SkippedRun(Exception):
    """A run directory the report cannot use; the message says why (one line)."""


def is_report_dir(path: Path) -> bool:
    """Whether ``path`` is a sweep report's output (its baseline runs are the report's, not the sweep's)."""
    return (path / REPORT_MARKER).is_file() or ((path / "results.csv").is_file() and (path / "paired.csv").is_file())


def find_run_dirs(roots: Iterable[str | os.PathLike], exclude: Iterable[Path] = ()) -> list[Path]:
    """Every run directory under ``roots`` (searched recursively), sorted, skipping the ``exclude`` trees and any
    earlier report's output."""
    excluded = [Path(e).resolve() for e in exclude]
    found: set[Path] = set()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath).resolve()
            if any(here == e or e in here.parents for e in excluded) or is_report_dir(here):
                dirnames.clear()
                continue
            dirnames[:] = [d for d in dirnames if d != HYDRA_DIR]
            if METRICS in filenames or PROVENANCE in filenames or (here / HYDRA_CONFIG).is_file():
                found.add(here)
    return sorted(found)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise SkippedRun(f"{path.name} is not UTF-8 ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise SkippedRun(f"{path.name} is not valid JSON (truncated?): {error.msg} at line {error.lineno}") from None


def _dig(tree: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def _config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / HYDRA_CONFIG
    if not path.is_file():
        return {}
    try:
        loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except UnicodeDecodeError:
        raise SkippedRun(".hydra/config.yaml is not UTF-8") from None
    except yaml.YAMLError as error:
        raise SkippedRun(f".hydra/config.yaml is not valid YAML: {str(error).splitlines()[0]}") from None
    return loaded if isinstance(loaded, dict) else {}


def read_per_question(run_dir: Path) -> list[dict[str, Any]] | None:
    """Per-question scores of a run, or None when it has no per-question file."""
    for name in PER_QUESTION_FILES:
        path = run_dir / name
        if path.is_file():
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
                return [json.loads(line) for line in lines if line.strip()]
            except UnicodeDecodeError:
                raise SkippedRun(f"{name} is not UTF-8") from None
            except json.JSONDecodeError as error:
                raise SkippedRun(f"{name} has a line that is not JSON (truncated?): {error.msg}") from None
    return None


def runtime_cwd(run_dir: Path) -> str | None:
    """The directory the run was started from (Hydra records it in ``.hydra/hydra.yaml``)."""
    path = run_dir / HYDRA_RUNTIME
    if not path.is_file():
        return None
    try:
        return _dig(yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader), "hydra.runtime.cwd")
    except (UnicodeDecodeError, yaml.YAMLError):
        return None


def resolve_golden(run: Run) -> Path | None:
    """The run's golden file as an absolute path (relative ones are relative to where the run started)."""
    if not run.golden:
        return None
    path = Path(run.golden)
    if not path.is_absolute() and run.cwd:
        path = Path(run.cwd) / path
    return path.resolve() if path.is_file() else None


def batch_name(golden: str | None) -> str:
    """``…/11B3_golden.json`` -> ``11B3``."""
    if not golden:
        return "unknown"
    stem = Path(golden).stem
    return stem[: -len("_golden")] if stem.endswith("_golden") else stem


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read one run directory; raises :class:`SkippedRun` with the reason when it cannot be used."""
    run_dir = Path(run_dir)
    if not (run_dir / METRICS).is_file():
        raise SkippedRun(f"no {METRICS} (interrupted, failed or still running?)")
    try:
        recorded = parse_metrics(_read_json(run_dir / METRICS))  # any shape infer, evaluate or ensemble wrote
    except ValueError as error:
        raise SkippedRun(str(error)) from None
    facts, evaluation = recorded.facts, recorded.evaluation
    measures = {k: v for k, v in recorded.measures.items() if is_measure(k, v)}
    if not measures:
        raise SkippedRun(f"{METRICS} has no scores (questions without golden answers?)")
    cfg = _config(run_dir)
    provenance = _read_json(run_dir / PROVENANCE) if (run_dir / PROVENANCE).is_file() else {}
    golden = _dig(cfg, "data.golden") or cfg.get("golden") or evaluation.get("golden")
    if golden and "${" in str(golden):  # an interpolation (e.g. the demo default): the path the run recorded
        golden = next(iter((provenance or {}).get("data") or {}), None)
    wiki = _dig(cfg, "retrieval.wikipedia.max_articles") or 0
    accounting = {k.split(".", 1)[1]: v for k, v in facts.items() if k.startswith("accounting.")}
    accounting["questions"] = facts.get("run.questions")
    model = (
        _dig(cfg, "model.name") or facts.get("run.model") or f"submission:{Path(str(evaluation.get('system'))).stem}"
    )
    return Run(
        path=run_dir,
        model=str(model),
        batch=batch_name(golden),
        golden=str(golden) if golden else None,
        adapter=_dig(cfg, "model.adapter"),
        shots=_dig(cfg, "prompt.n_shots"),
        selection=_dig(cfg, "prompt.selection"),
        wiki=bool(wiki),
        task=str(_dig(cfg, "task.name") or "phase_b"),
        metrics=measures,
        ci={k: v for k, v in recorded.ci.items() if isinstance(v, list) and len(v) == 2},
        accounting=accounting,
        per_question=read_per_question(run_dir),
        git_hash=_dig(provenance, "git.commit"),
        created=provenance.get("created") if isinstance(provenance, dict) else None,
        cwd=runtime_cwd(run_dir) if golden and not Path(str(golden)).is_absolute() else None,
    )
