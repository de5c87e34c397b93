"""Speed of the sweep report: ``build_report`` over CONFIGS configurations × BATCHES batches of run directories.

The run directories are fixture runs (``bioqa.analysis.synthetic``) over copies of the embedded demo batch
(16 questions × COPIES per batch), scored by the real official measures: a pool of distinct scored runs per batch is
generated once, then copied under each configuration's name (the report reads each copy as its own run). Timed: the
whole report as ``evaluate.py report=`` builds it (loading, baselines, pooling with 1000-resample CIs, paired tests,
Holm, CSV/Parquet/markdown, four PNG figures).

    python benchmarks/report_speed.py [--configs 200] [--batches 4] [--copies 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from bioqa.analysis.report import build_report
from bioqa.analysis.synthetic import replicate_golden, synthetic_run
from bioqa.resources import demo_golden_path

SHOTS = (0, 1, 3, 5, 10)
POOL = 10  # distinct scored runs per batch


def make_runs(root: Path, configs: int, batches: int, copies: int) -> int:
    """Write configs × batches run directories under ``root / 'sweep'``; returns how many."""
    count = 0
    for b in range(batches):
        golden = replicate_golden(demo_golden_path(), root / "golden" / f"SYN{b + 1}_golden.json", copies)
        pool = [
            synthetic_run(root / "pool" / f"{b}_{i}", golden, "pool", 0, 0.1 + 0.08 * i, 0.05 * (i % 3), seed=i)
            for i in range(POOL)
        ]
        for c in range(configs):
            model, shots = f"synthetic-{c // len(SHOTS):03d}", SHOTS[c % len(SHOTS)]
            target = root / "sweep" / f"{model}_{shots}shot_{golden.stem}"
            shutil.copytree(pool[(c + b) % POOL], target)
            config_path = target / ".hydra" / "config.yaml"
            config = yaml.safe_load(config_path.read_text())
            config["model"]["name"], config["prompt"]["n_shots"] = model, shots
            config_path.write_text(yaml.safe_dump(config))
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=200)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--copies", type=int, default=6, help="questions per batch = 16 × copies")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "report_speed.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        runs = make_runs(root, args.configs, args.batches, args.copies)
        generated = time.perf_counter() - started
        times, cpu = [], []
        for _ in range(args.repeats):
            shutil.rmtree(root / "sweep" / "report", ignore_errors=True)
            started, started_cpu = time.perf_counter(), time.process_time()
            report = build_report(root / "sweep", bootstrap=1000)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        rows = len(report.results)
    result = {
        "run_dirs": runs,
        "configs": args.configs,
        "batches": args.batches,
        "questions_per_batch": 16 * args.copies,
        "results_rows": rows,
        "paired_rows": len(report.paired),
        "bootstrap": 1000,
        "seconds": {"median": round(statistics.median(times), 3), "all": [round(t, 3) for t in times]},
        "cpu_seconds": {"median": round(statistics.median(cpu), 3), "all": [round(t, 3) for t in cpu]},
        "target_seconds": 10,
        "fixture_generation_seconds": round(generated, 1),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
    }
    print(f"{'run dirs':>9} {'configs':>8} {'batches':>8} {'rows':>7} {'wall s':>8} {'CPU s':>7} {'load':>6}")
    print(
        f"{runs:>9} {args.configs:>8} {args.batches:>8} {rows:>7} {result['seconds']['median']:>8} "
        f"{result['cpu_seconds']['median']:>7} {result['machine']['load_average_1min']:>6}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
