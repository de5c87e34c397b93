"""Fixture run directories for the report's tests, notebooks tests and benchmark — never results.

A synthetic run answers a golden file by rule (each question right with probability ``skill``, left unparsed with
probability ``parse_failure_rate``), writes the same files ``infer.py`` writes (``.hydra/config.yaml``,
``provenance.json``, ``predictions.jsonl``, ``submission.json``, ``metrics.json``, ``per_question.jsonl``) and
is scored by the real official measures. Its model name starts with ``synthetic-`` and its provenance says so.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import yaml

from bioqa.data import SystemAnswer, load_questions, write_submission
from bioqa.evaluation import evaluate_submission
from bioqa.rundir import (
    HYDRA_CONFIG,
    HYDRA_DIR,
    PER_QUESTION,
    PREDICTIONS,
    PROVENANCE,
    SUBMISSION,
    RunMetrics,
    write_json,
    write_jsonl,
    write_metrics,
)


def replicate_golden(source: str | Path, target: str | Path, copies: int) -> Path:
    """A larger golden file: ``copies`` copies of every question of ``source`` with fresh ids (for benchmarks)."""
    data = json.loads(Path(source).read_text(encoding="utf-8"))
    questions = [{**q, "id": f"{q['id']}_{i}"} for i in range(copies) for q in data["questions"]]
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"questions": questions}), encoding="utf-8")
    return target


def _answer(question, rng: random.Random, skill: float, parsed: bool) -> SystemAnswer:
    right = rng.random() < skill
    exact: Any = None
    if parsed and question.type == "yesno":
        exact = question.exact_answer if right else ("no" if question.exact_answer == "yes" else "yes")
    elif parsed and question.type in ("factoid", "list"):
        golden = [syn[:1] for syn in question.exact_answer or []]
        exact = golden[:5] if right else [["unrelated entity"]]
    snippet = question.snippets[0].text if question.snippets else ""
    ideal = (question.ideal_answer[0] if right and question.ideal_answer else snippet) if parsed else ""
    return SystemAnswer(question.id, question.type, question.body, exact_answer=exact, ideal_answer=ideal)


def synthetic_run(
    run_dir: str | Path,
    golden: str | Path,
    model: str = "synthetic-a",
    shots: int = 0,
    skill: float = 0.5,
    parse_failure_rate: float = 0.0,
    usd_per_question: float = 0.0,
    seconds_per_question: float = 1.0,
    seed: int = 0,
    limit: int | None = None,
    bootstrap: int = 200,
    settings: dict[str, Any] | None = None,
) -> Path:
    """Write one scored fixture run directory; returns it. ``settings``: dotted config keys to set besides
    (``{"prompt.structured": False}``: what a sweep over that key records)."""
    run_dir = Path(run_dir)
    rng = random.Random(f"{model}/{shots}/{golden}/{seed}")
    questions = load_questions(golden)[:limit]
    config: dict[str, Any] = {
        "task_name": "infer",
        "model": {"name": model, "adapter": None},
        "prompt": {"n_shots": shots, "selection": "first_n"},
        "retrieval": {"wikipedia": None},
        "task": {"name": "phase_b"},
        "data": {"golden": str(Path(golden).resolve()), "limit": limit},
    }
    for dotted, value in (settings or {}).items():
        *parents, leaf = dotted.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    (run_dir / HYDRA_DIR).mkdir(parents=True, exist_ok=True)
    (run_dir / HYDRA_CONFIG).write_text(yaml.safe_dump(config), encoding="utf-8")
    write_json(run_dir / PROVENANCE, {"created": "1970-01-01T00:00:00+00:00", "git": {"commit": "synthetic"}})
    answers, records = [], []
    for q in questions:
        parsed = rng.random() >= parse_failure_rate
        answers.append(_answer(q, rng, skill, parsed))
        kinds = ["ideal"] if q.type == "summary" else ["exact", "ideal"]
        for kind in kinds:
            records.append(
                {
                    "id": q.id,
                    "type": q.type,
                    "kind": kind,
                    "prompt_hash": f"{rng.getrandbits(64):016x}",
                    "shot_ids": [f"shot{i}" for i in range(shots)],
                    "n_snippets": len(q.snippets),
                    "dropped": {"shots": 0, "snippets": 0},
                    "completion": json.dumps(answers[-1].exact_answer) if parsed else "I cannot answer that.",
                    "parse_ok": parsed,
                }
            )
    write_jsonl(run_dir / PREDICTIONS, records)
    write_submission(run_dir / SUBMISSION, answers)
    report = evaluate_submission(golden, run_dir / SUBMISSION, phase="B", bootstrap=bootstrap, seed=seed)
    write_jsonl(run_dir / PER_QUESTION, report.per_question)
    n = len(questions)
    failures = sum(not r["parse_ok"] for r in records)
    facts = {
        "accounting.requests": len(records),
        "accounting.prompt_tokens": 400 * (shots + 1) * len(records),
        "accounting.completion_tokens": 50 * len(records),
        "accounting.cost_usd": round(usd_per_question * n, 6),
        "accounting.wall_time_s": seconds_per_question * n,
        "accounting.questions_per_minute": 60 / seconds_per_question,
        "accounting.parse_failure_rate": failures / len(records) if records else 0.0,
        "accounting.dropped_shots": 0,
        "accounting.dropped_snippets": 0,
        "run.model": model,
        "run.questions": n,
    }
    write_metrics(run_dir, RunMetrics.scored(report.to_json(), facts))
    return run_dir
