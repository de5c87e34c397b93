"""Run accounting from prediction records: tokens, cost, latency percentiles, parse failures."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np


def _rate(failures: int, total: int) -> float:
    return failures / total if total else 0.0


def summarize_records(
    records: Iterable[dict[str, Any]],
    wall_time_s: float | None = None,
    resumed: Collection[tuple[str, str]] = frozenset(),
) -> dict[str, Any]:
    """Totals over a run's records; ``cost_usd`` counts only calls made (cache hits cost nothing again).

    ``resumed``: ``(question id, kind)`` of records an interrupted earlier run had already journaled; throughput
    counts only the questions answered within ``wall_time_s``.
    """
    records = list(records)
    latencies = [r["latency_s"] for r in records if not r.get("cached") and not r.get("error")]
    summary: dict[str, Any] = {
        "requests": len(records),
        "resumed": sum((r["id"], r["kind"]) in resumed for r in records),
        "cached": sum(bool(r.get("cached")) for r in records),
        "errors": sum(bool(r.get("error")) for r in records),
        "prompt_tokens": sum(r.get("prompt_tokens", 0) for r in records),
        "completion_tokens": sum(r.get("completion_tokens", 0) for r in records),
        "cost_usd": round(sum(r.get("cost_usd", 0.0) for r in records), 6),
        "dropped_shots": sum(r.get("dropped", {}).get("shots", 0) for r in records),
        "dropped_snippets": sum(r.get("dropped", {}).get("snippets", 0) for r in records),
    }
    for q in (50, 90, 99):
        summary[f"latency_p{q}_s"] = float(np.percentile(latencies, q)) if latencies else 0.0
    if wall_time_s is not None:
        summary["wall_time_s"] = round(wall_time_s, 3)
        answered = {r["id"] for r in records if (r["id"], r["kind"]) not in resumed}
        summary["questions_per_minute"] = round(60 * len(answered) / wall_time_s, 2) if wall_time_s else 0.0
    failures: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        if r.get("error"):
            continue
        for key in ("all", f"{r['type']}.{r['kind']}"):
            failures[key][0] += not r.get("parse_ok", False)
            failures[key][1] += 1
    summary["parse_failure_rate"] = _rate(*failures.pop("all", [0, 0]))
    for key, (failed, total) in sorted(failures.items()):
        summary[f"parse_failure_rate.{key}"] = _rate(failed, total)
    return summary
