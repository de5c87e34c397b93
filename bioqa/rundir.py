"""The run-directory contract: the name of every file a run directory holds, and ``metrics.json`` in one versioned
shape that infer, evaluate, ensemble, the baselines and training all write, read back by one loader.

``metrics.json`` (schema 2)::

    {"schema": 2,
     "metrics": {"yesno.acc": 0.8, ...},             # set-level measures (null where NaN)
     "ci": {"yesno.acc": [0.7, 0.9], ...},           # their bootstrap CIs
     "accounting": {"requests": 12, ...},            # run facts, one section per prefix of their dotted names:
     "run": {"model": "...", "questions": 6},        #   accounting.*, run.*, phase_a.*, ensemble.*
     "evaluation": {"golden": ..., "system": ..., "phases": [...], "version": 9, "counts": {...},
                    "bootstrap": {...}, "warnings": [...]},   # the evaluator's record (+ "comparison")
     "training": {"train/loss": 1.2, ...}}           # a training run's final metrics

:func:`read_metrics` also reads the shapes written before the schema (infer's flat dotted keys, evaluate's measures
nested under ``"metrics"``, training's flat ``train/*`` keys), so old run directories stay readable.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The answers in the official BioASQ format.
SUBMISSION = "submission.json"
#: One record per question and answer kind, appended as they arrive (the resume journal).
PREDICTIONS = "predictions.jsonl"
#: Scores and run facts (:func:`write_metrics`).
METRICS = "metrics.json"
#: Per-question values, one JSON object per scored golden question.
PER_QUESTION = "per_question.jsonl"
#: Per-question values of the second system of ``evaluate.py compare=``.
PER_QUESTION_COMPARE = "per_question_compare.jsonl"
#: What runs before the rename to :data:`PER_QUESTION` wrote.
PER_QUESTION_LEGACY = "per_question_scores.jsonl"
#: Code version, platform, packages and data-file hashes (``bioqa.runs.write_provenance``).
PROVENANCE = "provenance.json"
#: What binds a run directory to the config that produced its answers (``bioqa.runs.RunDirectory``).
IDENTITY = "run_identity.json"
LOCK = ".run.lock"
HOLDER = ".run.holder.json"
#: Hydra's record of the run: its directory and the files in it.
HYDRA_DIR = ".hydra"
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
HYDRA_CONFIG = f"{HYDRA_DIR}/config.yaml"
HYDRA_RUNTIME = f"{HYDRA_DIR}/hydra.yaml"
HYDRA_OVERRIDES = f"{HYDRA_DIR}/overrides.yaml"
#: Phase A: the traces of every stage and their wall time, model calls and errors.
PHASE_A_TRACES = "phase_a_traces.json"
PHASE_A_STATS = "phase_a_stats.json"
#: An ensemble's settings and its per-question fusion traces.
ENSEMBLE = "ensemble.json"
ENSEMBLE_TRACES = "ensemble_traces.jsonl"
#: What the no-model baselines answered with.
BASELINE = "baseline.json"
#: evaluate.py's own sub-directories when the output directory already holds a run.
EVALUATIONS_DIR = "evaluations"
#: Training: the adapter, Lightning's checkpoints, the merged model.
ADAPTER_DIR = "adapter"
#: What training records beside an adapter (training config, hyper-parameters, prompt); infer reads the prompt back
#: (:func:`bioqa.pipeline.app.adapter_prompt`).
TRAINING_INFO = "bioqa_training.json"
CHECKPOINTS_DIR = "checkpoints"
MERGED_DIR = "merged"
#: A run directory holds at least one of these.
MARKERS = (METRICS, HYDRA_CONFIG, PROVENANCE)

SCHEMA = 2
_RESERVED = ("schema", "metrics", "ci", "evaluation", "training")
#: Keys of the evaluator's record (``EvaluationReport.to_json()`` without measures and CIs).
_EVALUATION_KEYS = ("golden", "system", "phases", "version", "counts", "bootstrap", "warnings", "comparison")
#: The prefixes of the run facts infer and ensemble wrote at the top level before the schema.
_FACT_SECTIONS = ("accounting", "run", "phase_a", "ensemble", "errors")


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` into a temporary file beside ``path`` (this process's own, same suffix), then rename it into
    place: a crash or a failed write never leaves a half-written ``path``, and the temporary file never stays."""
    path = Path(path)
    if path.is_dir():  # else the rename fails naming the temporary file
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write JSON atomically (:func:`write_atomically`)."""
    text = json.dumps(payload, indent=2, ensure_ascii=False, default=str)
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_jsonl(path: str | os.PathLike, rows: Any) -> Path:
    """Write one JSON object per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return path


@dataclass
class RunMetrics:
    """What a run's ``metrics.json`` holds, whatever shape it was written in."""

    measures: dict[str, float | None] = field(default_factory=dict)
    ci: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)  # dotted run facts: accounting.*, run.*, phase_a.*, ...
    evaluation: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def scored(cls, report: Mapping[str, Any] | None, facts: Mapping[str, Any] | None = None) -> RunMetrics:
        """From ``EvaluationReport.to_json()`` (``None``: not scored) and the run's facts."""
        report = report or {}
        return cls(
            measures=dict(report.get("metrics") or {}),
            ci=dict(report.get("ci") or {}),
            facts=dict(facts or {}),
            evaluation={k: report[k] for k in _EVALUATION_KEYS if k in report},
        )

    def flat(self) -> dict[str, Any]:
        """One dict with dotted keys: the facts, the measures and ``ci`` (infer's in-memory view, what trackers and
        the sweep summary show; the evaluator's record is :attr:`evaluation`)."""
        out: dict[str, Any] = {**self.facts, **self.training, **self.measures}
        if self.measures or self.ci:
            out["ci"] = self.ci
        return out

    def to_json(self) -> dict[str, Any]:
        """The schema-2 payload."""
        payload: dict[str, Any] = {"schema": SCHEMA, "metrics": self.measures, "ci": self.ci}
        for key, value in self.facts.items():
            section, dot, name = key.partition(".")
            if not dot or section in _RESERVED:
                raise ValueError(f"run fact {key!r}: expected a dotted name whose prefix is not one of {_RESERVED}")
            payload.setdefault(section, {})[name] = value
        if self.evaluation:
            payload["evaluation"] = self.evaluation
        if self.training:
            payload["training"] = self.training
        return payload


def parse_metrics(payload: Any) -> RunMetrics:
    """A ``metrics.json`` payload of any shape as :class:`RunMetrics`; ``ValueError`` when it is not an object."""
    if not isinstance(payload, dict):
        raise ValueError("metrics.json is not a JSON object")
    if payload.get("schema") == SCHEMA:
        facts = {
            f"{section}.{name}": value
            for section, values in payload.items()
            if section not in _RESERVED and isinstance(values, dict)
            for name, value in values.items()
        }
        return RunMetrics(
            measures=dict(payload.get("metrics") or {}),
            ci=dict(payload.get("ci") or {}),
            facts=facts,
            evaluation=dict(payload.get("evaluation") or {}),
            training=dict(payload.get("training") or {}),
        )
    out = RunMetrics(evaluation={k: payload[k] for k in _EVALUATION_KEYS if k in payload})
    out.ci = dict(payload.get("ci") or {}) if isinstance(payload.get("ci"), dict) else {}
    nested = payload.get("metrics")  # evaluate.py before the schema: measures under "metrics"
    if isinstance(nested, dict):
        out.measures.update(nested)
    for key, value in payload.items():
        if key in _EVALUATION_KEYS or key in ("ci", "metrics"):
            continue
        if "/" in key:  # training: train/loss, val/loss, ...
            out.training[key] = value
        elif key.partition(".")[0] in _FACT_SECTIONS:
            out.facts[key] = value
        else:  # infer before the schema: measures at the top level
            out.measures[key] = value
    return out


def write_metrics(run_dir: str | os.PathLike, metrics: RunMetrics) -> Path:
    """Write ``run_dir/metrics.json`` in the schema-2 shape."""
    return write_json(Path(run_dir) / METRICS, metrics.to_json())


def read_metrics(run_dir: str | os.PathLike) -> RunMetrics:
    """Read ``run_dir/metrics.json`` (any shape). Raises ``OSError``, ``UnicodeDecodeError``, ``json.JSONDecodeError``
    or ``ValueError`` (not an object)."""
    return parse_metrics(json.loads((Path(run_dir) / METRICS).read_text(encoding="utf-8")))
