"""Run accounting from prediction records: outcomes, tokens, cost, latency percentiles, parse failures — and
the run's verdict on failed requests."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np

from bioqa.errors import TooManyFailures


def _rate(failures: int, total: int) -> float:
    return failures / total if total else 0.0


def truncated(record: dict[str, Any]) -> bool:
    """Whether the model stopped at the token limit (``finish_reason == "length"``) on an answer it returned."""
    return not record.get("error") and record.get("finish_reason") == "length"


def produced(record: dict[str, Any], key: str) -> float | None:
    """How the record's answer was produced: its own ``key`` (``cost_usd``, ``latency_s``, ``wall_s``), or for a
    cache hit the original call's (``None`` when that is unknown: a cache row or record older than the field)."""
    return record.get(f"original_{key}") if record.get("cached") else record.get(key)


def summarize_records(
    records: Iterable[dict[str, Any]],
    rerun_wall_time_s: float | None = None,
    resumed: Collection[tuple[str, str]] = frozenset(),
) -> dict[str, Any]:
    """Totals over a run's records, describing how its answers were produced: a resumed record keeps its own
    figures and a cache hit those of the original call (:func:`produced`), so rerunning a finished run, or running it
    again from the cache, reports the same cost, latency, wall time and throughput.

    ``answered`` + ``errors`` = ``requests``; ``resumed``: ``(question id, kind)`` of records an earlier run into
    the same directory had already journaled (answered, no call this run); ``from_cache``: answers of this run
    served by the completion cache; ``truncated``: answers cut at the token limit (``truncated_ideal`` of them
    ideal). ``wall_time_s`` is the sum of the records' wall-time shares; with it, ``questions_per_minute`` counts
    questions all of whose requests were answered, ``requests_per_minute`` answered requests (both left out when
    a record's share is unknown). What this invocation itself spent: ``rerun_wall_time_s`` (when given) and
    ``rerun_cost_usd`` (calls made now).
    """
    records = list(records)
    fresh = [r for r in records if (r["id"], r["kind"]) not in resumed]
    answered = [r for r in records if not r.get("error")]
    latencies = [v for r in answered if (v := produced(r, "latency_s")) is not None]
    summary: dict[str, Any] = {
        "requests": len(records),
        "answered": len(answered),
        "errors": len(records) - len(answered),
        "resumed": len(records) - len(fresh),
        "from_cache": sum(bool(r.get("cached")) and not r.get("error") for r in fresh),
        "truncated": sum(truncated(r) for r in records),
        "truncated_ideal": sum(truncated(r) and r["kind"] == "ideal" for r in records),
        "prompt_tokens": sum(r.get("prompt_tokens", 0) for r in records),
        "completion_tokens": sum(r.get("completion_tokens", 0) for r in records),
        "cost_usd": round(sum(produced(r, "cost_usd") or 0.0 for r in records), 6),
        "rerun_cost_usd": round(sum(r.get("cost_usd", 0.0) for r in fresh), 6),
        "dropped_shots": sum(r.get("dropped", {}).get("shots", 0) for r in records),
        "dropped_snippets": sum(r.get("dropped", {}).get("snippets", 0) for r in records),
    }
    errors_by_kind: dict[str, int] = defaultdict(int)
    for r in records:
        if r.get("error"):
            errors_by_kind[r.get("error_kind") or "unknown"] += 1
    for kind, count in sorted(errors_by_kind.items()):
        summary[f"errors.{kind}"] = count
    for q in (50, 90, 99):
        summary[f"latency_p{q}_s"] = float(np.percentile(latencies, q)) if latencies else 0.0
    shares = [produced(r, "wall_s") for r in records]
    if records and None not in shares:
        wall_time_s = sum(shares)  # type: ignore[arg-type]
        answered_ids = {r["id"] for r in records} - {r["id"] for r in records if r.get("error")}
        per_minute = 60 / wall_time_s if wall_time_s else 0.0
        summary["wall_time_s"] = round(wall_time_s, 3)
        summary["questions_per_minute"] = round(per_minute * len(answered_ids), 2)
        summary["requests_per_minute"] = round(per_minute * len(answered), 2)
    if rerun_wall_time_s is not None:
        summary["rerun_wall_time_s"] = round(rerun_wall_time_s, 3)
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


def summary_line(summary: dict[str, Any], auxiliary: tuple[int, int] = (0, 0)) -> str:
    """The one line a run ends with: what happened to each of its answer requests, and ``auxiliary``'s
    ``(failed, total)`` other calls (:func:`auxiliary_calls`) when it made any."""
    line = (
        f"requests: {summary['requests']} — answered {summary['answered']}, failed {summary['errors']}, "
        f"cached {summary['from_cache']}, resumed {summary['resumed']}, truncated {summary['truncated']}"
    )
    failed, total = auxiliary
    return f"{line}; Phase A / Wikipedia calls and fetches: {total}, failed {failed}" if total else line


def auxiliary_calls(facts: dict[str, Any]) -> tuple[int, int]:
    """``(failed, total)`` calls a run made besides its answers: Phase A's and Wikipedia's model calls (a Phase A reply
    holding nothing usable counts as failed), and the Wikipedia fetches (one that failed leaves its question without
    that article, like a failed titles call)."""
    wikipedia = [key for key in facts if key.startswith("wikipedia.") and key.count(".") == 2]  # wikipedia.STAGE.*
    unreachable = facts.get("wikipedia.unreachable", 0)
    failed = (
        facts.get("phase_a.model_errors", 0)
        + facts.get("phase_a.unusable", 0)
        + sum(facts[k] for k in wikipedia if k.endswith(".failed"))
    )
    total = facts.get("phase_a.model_calls", 0) + sum(facts[k] for k in wikipedia if k.endswith(".calls"))
    return failed + unreachable, total + unreachable + facts.get("wikipedia.fetched", 0)


def check_failures(failed: int, total: int, max_fraction: float, where: Any) -> None:
    """Raise :class:`TooManyFailures` (exit 3) when more than ``max_fraction`` of the ``total`` requests failed."""
    if failed and failed > max_fraction * total:
        raise TooManyFailures(
            f"{failed} of {total} requests failed (allowed: errors.max_fraction={max_fraction:g}); outputs are in "
            f"{where}; rerun the same command to retry the failed requests (answered ones are reused)"
        )
