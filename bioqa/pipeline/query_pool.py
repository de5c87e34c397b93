"""A query shot pool from a finished Phase A run, as the seed paper chose its query shots: the questions of an
earlier batch with the completions that produced their queries, best retrieval F1 first (the paper sorted its
previous run's CSV by ``f1_score`` and took the top n).

    python -m bioqa.pipeline.query_pool RUN_DIR --golden GOLDEN.json [--out POOL.json]

``RUN_DIR`` is a ``task=phase_a`` run with ``retrieval/phase_a=paper`` (its ``phase_a_traces.json`` keeps each
query's completion); ``GOLDEN`` the golden file of that batch (its sha256 must be the run's). Per question the
documents' precision, recall and F1 come from bioqa's official Phase A measures. The pool records the run it came
from; use it with ``retrieval.phase_a.shots.query=N retrieval.phase_a.shot_files.query=POOL.json`` (the run
identity records the pool's sha256).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bioqa.config.common import check_file, read_json_file, read_questions
from bioqa.errors import DataFileError, error_boundary
from bioqa.evaluation.official import evaluate_phase_a
from bioqa.pipeline.phase_a_paper import POOL_KIND
from bioqa.rundir import IDENTITY, PHASE_A_TRACES, SUBMISSION, write_json
from bioqa.runs import file_sha256

MEASURE = "documents"


def _completions(run_dir: Path) -> dict[str, str]:
    """The completion behind each question's first model query (a failed request has none)."""
    traces = read_json_file("RUN_DIR", str(run_dir / PHASE_A_TRACES))
    if not isinstance(traces, list) or not all(isinstance(t, dict) and "queries" in t for t in traces):
        raise DataFileError(f"RUN_DIR={run_dir}: {PHASE_A_TRACES} is not a list of Phase A traces")
    found = {}
    for trace in traces:
        first = next((q for q in trace["queries"] if q.get("source") == "llm"), None)
        if first is not None and isinstance(first.get("completion"), str):
            found[trace["id"]] = first["completion"]
    if not found:
        raise DataFileError(
            f"RUN_DIR={run_dir}: its Phase A traces hold no query completions (run with retrieval/phase_a=paper)"
        )
    return found


def build_pool(run_dir: str | Path, golden: str) -> dict[str, Any]:
    """The pool of ``run_dir`` (a finished Phase A run on the batch of ``golden``)."""
    run_dir = Path(run_dir)
    identity = read_json_file("RUN_DIR", str(run_dir / IDENTITY))
    recorded = (identity.get("identity") or {}).get("data", {}).get("sha256") if isinstance(identity, dict) else None
    golden_sha = file_sha256(check_file("--golden", golden))
    if recorded != golden_sha:
        raise DataFileError(f"--golden={golden}: not the question file of the run in {run_dir} (sha256 differs)")
    questions = {q.id: q for q in read_questions("--golden", golden)}
    completions = _completions(run_dir)
    result = evaluate_phase_a(golden, str(check_file("RUN_DIR", str(run_dir / SUBMISSION))))
    shots = []
    for row in result.per_question:
        if row["id"] in completions and f"{MEASURE}.f1" in row:
            shots.append(
                {
                    "id": row["id"],
                    "question": questions[row["id"]].body,
                    "completion": completions[row["id"]],
                    "precision": row[f"{MEASURE}.precision"],
                    "recall": row[f"{MEASURE}.recall"],
                    "f1": row[f"{MEASURE}.f1"],
                }
            )
    shots.sort(key=lambda s: -s["f1"])  # stable: ties keep the batch's order
    return {
        "kind": POOL_KIND,
        "source": {
            "run_dir": str(run_dir.resolve()),
            "run_identity_sha256": file_sha256(run_dir / IDENTITY),
            "golden": str(Path(golden).resolve()),
            "golden_sha256": golden_sha,
            "measure": f"official Phase A {MEASURE} precision / recall / F1 per question",
        },
        "shots": shots,
    }


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m bioqa.pipeline.query_pool", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished task=phase_a run with retrieval/phase_a=paper")
    parser.add_argument("--golden", required=True, help="the golden file of that run's batch")
    parser.add_argument("--out", help="the pool file (default: RUN_DIR/query_pool.json)")
    args = parser.parse_args(argv)
    pool = build_pool(args.run_dir, args.golden)
    out = Path(args.out or Path(args.run_dir) / "query_pool.json")
    write_json(out, pool)
    best = pool["shots"][0]["f1"] if pool["shots"] else 0.0
    print(f"{out}: {len(pool['shots'])} query shots, best documents F1 {best:.3f}", file=sys.stdout)
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    error_boundary(main)()
