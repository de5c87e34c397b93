"""Time scoring one 100-question BioASQ batch (8B3): official phases A and B, ROUGE, bootstrap CIs.

Prints a table and writes ``benchmarks/results/eval_speed.json``. The official jar is not available here (no Java,
no network), so only this re-implementation is timed; its numbers equal the jar's on all oracle cases.

    python benchmarks/eval_speed.py [--shared ../shared/bioasq] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bioqa.evaluation import evaluate_phase_a, evaluate_phase_b, evaluate_submission
from bioqa.runs import write_json

ROOT = Path(__file__).resolve().parents[1]


def combined_system(shared: Path, batch: str) -> dict:
    """The oracle's noisy phase A system with the noisy exact answers and a truncated golden ideal answer added."""
    systems = shared / "oracle" / "systems" / batch
    system = json.loads((systems / f"{batch}__A_noisy.json").read_text())
    exact = {q["id"]: q for q in json.loads((systems / f"{batch}__B_noisy.json").read_text())["questions"]}
    golden = {q["id"]: q for q in json.loads((shared / "golden" / f"{batch}_golden.json").read_text())["questions"]}
    for q in system["questions"]:
        if "exact_answer" in exact.get(q["id"], {}):
            q["exact_answer"] = exact[q["id"]]["exact_answer"]
        q["ideal_answer"] = " ".join(golden[q["id"]]["ideal_answer"][0].split()[:30])
    return system


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("BIOQA_SHARED", ROOT.parent / "shared/bioasq"))
    )
    parser.add_argument("--batch", default="8B3")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    golden = args.shared / "golden" / f"{args.batch}_golden.json"
    system = combined_system(args.shared, args.batch)
    n_questions = len(system["questions"])
    cases = {
        "official phase A": lambda: evaluate_phase_a(golden, system),
        "official phase B": lambda: evaluate_phase_b(golden, system),
        "A+B, no ROUGE, no CIs": lambda: evaluate_submission(golden, system, rouge=False, bootstrap=0),
        "A+B, no ROUGE, 1000-resample CIs": lambda: evaluate_submission(golden, system, rouge=False, bootstrap=1000),
        "A+B+ROUGE, no CIs": lambda: evaluate_submission(golden, system, bootstrap=0),
        "A+B+ROUGE, 1000-resample CIs": lambda: evaluate_submission(golden, system, bootstrap=1000),
    }
    results = {name: timed(fn, args.repeats) for name, fn in cases.items()}
    table = Table(title=f"Scoring {args.batch} ({n_questions} questions), median of {args.repeats}")
    table.add_column("what")
    table.add_column("seconds", justify="right")
    for name, seconds in results.items():
        table.add_row(name, f"{seconds:.3f}")
    Console().print(table)
    write_json(
        ROOT / "benchmarks" / "results" / "eval_speed.json",
        {
            "batch": args.batch,
            "questions": n_questions,
            "repeats": args.repeats,
            "median_seconds": results,
            "official_jar": "not available here (no Java runtime, no network): only bioqa's re-implementation is "
            "timed; it reproduces the jar's numbers on all 450 oracle cases",
            "machine": {"python": platform.python_version(), "processor": platform.processor(), "cpus": os.cpu_count()},
        },
    )


if __name__ == "__main__":
    main()
