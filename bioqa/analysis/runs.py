"""Find and read finished run directories (what ``infer.py``/``evaluate.py`` wrote) for the sweep report.

A run directory is any directory holding ``metrics.json``, ``.hydra/config.yaml`` or ``provenance.json``. One that
cannot be used (no ``metrics.json``, a truncated or non-UTF-8 one, no scores) is skipped with a reason; the caller
records the reasons in the report.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bioqa.analysis.measures import bad_score, is_measure
from bioqa.rundir import (
    HYDRA_CONFIG,
    HYDRA_DIR,
    HYDRA_RUNTIME,
    IDENTITY,
    METRICS,
    PER_QUESTION,
    PER_QUESTION_LEGACY,
    PROVENANCE,
    parse_metrics,
)
from bioqa.runs import flatten

PER_QUESTION_FILES = (PER_QUESTION, PER_QUESTION_LEGACY)
REPORT_MARKER = ".bioqa_report"  # written into every report's output directory
#: Settings that never change how a question is answered: where files go, scoring, logging, caching, and which
#: questions were asked (the question file is the run's batch; ``data.limit``/``data.types`` pick questions, and the
#: report compares configurations on the questions they share). Every other setting of the run identity (else of
#: ``.hydra/config.yaml``) is part of a configuration's fingerprint.
NOT_ANSWER_SETTINGS = (
    "paths.", "hydra.", "logger.", "evaluation.", "cache.", "errors.", "task_name", "data.golden", "data.sha256",
    "data.limit", "data.types", "answering.chunk_size", "report", "bootstrap",
)  # fmt: skip
#: Settings a model-free run (Phase A by BM25) and an ensemble do not use: left out of their fingerprints.
MODEL_SETTINGS = ("model.", "backend.", "prompt.", "prompt", "answering.", "data.shot_pool")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Run:
    """One scored run: its configuration, measures, CIs and per-question scores.

    ``settings`` are everything that determined its answers (its ``run_identity.json``, else its config less
    :data:`NOT_ANSWER_SETTINGS`); ``fingerprint`` hashes them: two runs are one configuration exactly when their
    fingerprints agree. ``config`` is the label: :meth:`base_label` until the report has seen every run and added
    the settings that tell apart configurations with the same base label (see :func:`label_runs`)."""

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
    settings: dict[str, Any] = field(default_factory=dict)
    name: str | None = None  # what answered when it was no single model (an ensemble, a model-free Phase A)
    config: str = ""
    series: str = ""  # the label without the shot count: one curve of the shot curves

    def __post_init__(self) -> None:
        self.config = self.config or self.base_label()
        self.series = self.series or self.base_label(shots=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.settings or {"run.model": self.model})

    def base_label(self, shots: bool = True) -> str:
        """Model (+adapter), shots, selection (if not first_n), wiki, task (if not phase_b); an ensemble or a
        model-free run by what it is."""
        parts = [self.name or self.model + (f"+{Path(self.adapter).name}" if self.adapter else "")]
        if shots and self.shots is not None:
            parts.append(f"{self.shots}-shot")
        if self.selection and self.selection != "first_n":
            parts.append(self.selection)
        if self.wiki:
            parts.append("wiki")
        if self.task not in ("phase_b", "ensemble"):
            parts.append(self.task)
        return " ".join(parts)

    @property
    def questions(self) -> int:
        ids = {r.get("id") for r in self.per_question or []}
        return len(ids) or int(self.accounting.get("questions") or 0)

    def question_keys(self) -> frozenset[str]:
        """The questions it scored, as ``batch#golden index`` (how pooled rows name them)."""
        return frozenset(f"{self.batch}#{r['index']}" for r in self.per_question or [])


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _differing(settings: list[dict[str, Any]]) -> list[str]:
    keys = dict.fromkeys(k for s in settings for k in s)
    return [k for k in keys if len({json.dumps(s.get(k), sort_keys=True, default=str) for s in settings}) > 1]


def _shown(key: str, value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, list | dict) else str(value)
    return f"{key}={text if len(text) <= 40 else text[:39] + '…'}"


MAX_LABEL_SETTINGS = 3


def label_runs(runs: list[Run]) -> None:
    """Give every configuration (fingerprint) a label of its own: its base label, plus ``key=value`` for each
    setting that differs among the configurations sharing that base label (a sweep axis the base label does not
    show, e.g. ``prompt.structured``); a hash suffix where that is still not enough. Never two configurations
    under one label, whatever the sweep varied."""
    by_base: dict[str, dict[str, Run]] = {}
    for run in runs:
        by_base.setdefault(run.base_label(), {}).setdefault(run.fingerprint, run)
    labels: dict[str, tuple[str, str]] = {}
    for base, configs in by_base.items():
        keys = _differing([r.settings for r in configs.values()]) if len(configs) > 1 else []
        for key, run in configs.items():
            extra = " ".join(_shown(k, run.settings.get(k)) for k in keys[:MAX_LABEL_SETTINGS])
            if len(keys) > MAX_LABEL_SETTINGS:
                extra += f" #{key[:6]}"
            labels[key] = (f"{base} {extra}".strip(), f"{run.base_label(shots=False)} {extra}".strip())
    taken: dict[str, int] = {}
    for label, _ in labels.values():
        taken[label] = taken.get(label, 0) + 1
    for key, (label, series) in labels.items():
        if taken[label] > 1:  # settings that only a hash tells apart (or none: the same config on other questions)
            labels[key] = (f"{label} #{key[:6]}", f"{series} #{key[:6]}")
    for run in runs:
        run.config, run.series = labels[run.fingerprint]


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
                records = [json.loads(line) for line in lines if line.strip()]
            except UnicodeDecodeError:
                raise SkippedRun(f"{name} is not UTF-8") from None
            except json.JSONDecodeError as error:
                raise SkippedRun(f"{name} has a line that is not JSON (truncated?): {error.msg}") from None
            _check_records(name, records)
            return records
    return None


def _check_records(name: str, records: list[Any]) -> None:
    """Refuse per-question records no evaluation writes: not an object, a question listed twice, a score out of
    its measure's range (each would be pooled as if it were a question's score)."""
    seen: set[Any] = set()
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise SkippedRun(f"{name}:{number}: not a question's record (a JSON object): not pooled")
        question = record.get("id", record.get("index"))
        if question in seen:
            raise SkippedRun(f"{name}:{number}: question {question} a second time: not pooled")
        seen.add(question)
        problem = next(filter(None, (bad_score(key, value) for key, value in record.items())), None)
        if problem:
            raise SkippedRun(f"{name}:{number}: {problem} (question {question}): not pooled")


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


def _identity(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / IDENTITY
    if not path.is_file():
        return None
    recorded = _read_json(path)
    identity = recorded.get("identity") if isinstance(recorded, dict) else None
    if not isinstance(identity, dict):
        raise SkippedRun(f"{IDENTITY} holds no 'identity' object")
    return identity


def answer_settings(cfg: dict[str, Any], identity: dict[str, Any] | None, facts: dict[str, Any]) -> dict[str, Any]:
    """What determined a run's answers, as dotted keys: its run identity, else its config, less
    :data:`NOT_ANSWER_SETTINGS`; with what answered (``run.model``)."""
    recorded = flatten(identity) if identity is not None else flatten(cfg)
    settings = {k: v for k, v in recorded.items() if not k.startswith(NOT_ANSWER_SETTINGS)}
    if _model_free(cfg):
        return {k: v for k, v in settings.items() if not k.startswith(MODEL_SETTINGS)}
    if facts.get("run.model") is not None:
        settings["run.model"] = facts["run.model"]
    if _dig(cfg, "task.name") == "ensemble" and _dig(cfg, "ensemble.ideal") != "condense":
        settings = {k: v for k, v in settings.items() if not k.startswith(MODEL_SETTINGS)}
    return settings


def _model_free(cfg: dict[str, Any]) -> bool:
    """A Phase A run by BM25 alone: no model call shaped its documents and snippets."""
    return _dig(cfg, "task.name") == "phase_a" and _dig(cfg, "retrieval.phase_a.strategy") == "bm25"


def _name(cfg: dict[str, Any], facts: dict[str, Any]) -> str | None:
    """What answered, when it was no single model: ``ensemble(member + member)`` by the members' directory names;
    the retrieval strategy of a model-free Phase A run."""
    if _dig(cfg, "task.name") == "ensemble":
        members = facts.get("ensemble.members") or _dig(cfg, "ensemble.runs") or []
        return "ensemble(" + " + ".join(Path(str(m)).name for m in members) + ")"
    if _model_free(cfg):
        return str(_dig(cfg, "retrieval.phase_a.strategy"))
    return None


def _check_complete(per_question: list[dict[str, Any]] | None, evaluation: dict[str, Any], facts: dict[str, Any]):
    """Refuse a per-question file with fewer records than the run scored: per question group, the evaluator's
    ``counts`` (else, for runs that recorded none, ``run.questions``)."""
    if per_question is None:
        return
    counts = evaluation.get("counts")
    if isinstance(counts, dict):
        for group, expected in counts.items():
            found = sum(1 for r in per_question if any(k.startswith(f"{group}.") for k in r))
            if isinstance(expected, int) and found < expected:
                raise SkippedRun(
                    f"incomplete: {PER_QUESTION} holds {found} of the {expected} {group} questions the run scored "
                    "(cut short?): not pooled"
                )
        return
    expected = facts.get("run.questions")
    found = len({r.get("id") for r in per_question})
    if isinstance(expected, int) and not isinstance(expected, bool) and found < expected:
        raise SkippedRun(
            f"incomplete: {PER_QUESTION} holds {found} of the run's {expected} questions (cut short?): not pooled"
        )


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
    name = _name(cfg, facts)
    model = (
        _dig(cfg, "model.name") or facts.get("run.model") or f"submission:{Path(str(evaluation.get('system'))).stem}"
    )
    if name:  # an ensemble (run.model names its members' models) or a model-free run: not the config's default model
        model = facts.get("run.model", name) if _dig(cfg, "task.name") == "ensemble" else name
    per_question = read_per_question(run_dir)
    _check_complete(per_question, evaluation, facts)
    return Run(
        path=run_dir,
        model=str(model),
        batch=batch_name(golden),
        golden=str(golden) if golden else None,
        adapter=None if name else _dig(cfg, "model.adapter"),
        shots=None if name else _dig(cfg, "prompt.n_shots"),
        selection=None if name else _dig(cfg, "prompt.selection"),
        wiki=bool(wiki),
        task=str(_dig(cfg, "task.name") or "phase_b"),
        metrics=measures,
        ci={k: v for k, v in recorded.ci.items() if isinstance(v, list) and len(v) == 2},
        accounting=accounting,
        per_question=per_question,
        git_hash=_dig(provenance, "git.commit"),
        created=provenance.get("created") if isinstance(provenance, dict) else None,
        cwd=runtime_cwd(run_dir) if golden and not Path(str(golden)).is_absolute() else None,
        settings=answer_settings(cfg, _identity(run_dir), facts),
        name=name,
    )
