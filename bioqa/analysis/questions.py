"""Per-question error analysis of finished runs: wins and losses between two runs, parse failures, dropped shots and
snippets, worst questions with the prompt (from the completion cache) and the raw completion."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd

from bioqa.analysis.measures import question_score_key
from bioqa.analysis.runs import Run, load_run, runtime_cwd
from bioqa.rundir import PREDICTIONS


def predictions(run_dir: str | Path) -> pd.DataFrame:
    """One row per (question, answer kind) request of a run, as ``predictions.jsonl`` journaled it."""
    path = Path(run_dir) / PREDICTIONS
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    dropped = frame.get("dropped", pd.Series([{}] * len(frame))).apply(lambda d: d if isinstance(d, dict) else {})
    frame["dropped_shots"] = dropped.apply(lambda d: d.get("shots", 0))
    frame["dropped_snippets"] = dropped.apply(lambda d: d.get("snippets", 0))
    return frame


def scores(run: Run) -> pd.DataFrame:
    """Each scored question's main score (yes/no correct, factoid RR, list F1, ideal ROUGE-SU4 F1 for summaries)."""
    rows = []
    for r in run.per_question or []:
        key = question_score_key(r.get("type", ""))
        if key in r:
            rows.append({"id": r["id"], "type": r["type"], "score_key": key, "score": float(r[key])})
    return pd.DataFrame(rows, columns=["id", "type", "score_key", "score"])


def wins_and_losses(run_a: str | Path | Run, run_b: str | Path | Run) -> pd.DataFrame:
    """Questions both runs scored: score of A, of B, A − B and ``win``/``loss``/``tie`` from A's side."""
    a = run_a if isinstance(run_a, Run) else load_run(run_a)
    b = run_b if isinstance(run_b, Run) else load_run(run_b)
    merged = scores(a).merge(scores(b), on=["id", "type", "score_key"], suffixes=("_a", "_b"))
    merged["delta"] = merged["score_a"] - merged["score_b"]
    merged["outcome"] = merged["delta"].apply(lambda d: "win" if d > 1e-12 else "loss" if d < -1e-12 else "tie")
    return merged.sort_values("delta", kind="stable").reset_index(drop=True)


def cache_path(run: Run) -> Path | None:
    """The completion cache the run used: the root of the checkout it was started from, ``cache/completions.sqlite``
    (Hydra keeps ``cache.path`` unresolved in ``.hydra/config.yaml``)."""
    cwd = runtime_cwd(run.path)
    path = Path(cwd) / "cache" / "completions.sqlite" if cwd else None
    return path if path and path.is_file() else None


def _prompt_hash(payload: dict[str, Any]) -> str:
    """``bioqa.pipeline.answering.prompt_hash`` of a cached request (messages, decoding parameters, schema)."""
    canonical = json.dumps([payload["messages"], payload["params"], payload["json_schema"]], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def prompt_of(record: dict[str, Any], cache: str | Path | None) -> list[dict[str, str]] | None:
    """The chat messages of a prediction record, found in the completion cache by its completion text and prompt
    hash; None when the cache is absent or no longer holds it."""
    if cache is None or not Path(cache).is_file() or record.get("completion") is None:
        return None
    with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT request FROM completions WHERE text = ?", (record["completion"],))
        for (request,) in rows:
            payload = json.loads(request)
            if _prompt_hash(payload) == record.get("prompt_hash"):
                return payload["messages"]
    return None


def worst_questions(run_dir: str | Path, k: int = 5) -> pd.DataFrame:
    """The ``k`` lowest-scoring questions with their raw completion, parse outcome and prompt."""
    run = load_run(run_dir)
    preds = predictions(run.path)
    worst = scores(run).sort_values("score", kind="stable").head(k)
    cache = cache_path(run)
    out = []
    for _, row in worst.iterrows():
        kind = "ideal" if row["type"] == "summary" else "exact"
        match = preds[(preds["id"] == row["id"]) & (preds["kind"] == kind)] if len(preds) else preds
        record = match.iloc[0].to_dict() if len(match) else {}
        out.append(
            {
                **row.to_dict(),
                "completion": record.get("completion"),
                "parse_ok": record.get("parse_ok"),
                "parse_error": record.get("parse_error"),
                "prompt": prompt_of(record, cache),
            }
        )
    return pd.DataFrame(out)
