"""The embedded model answered in-process (``model=smollm2``, hf backend) and through the API path
(``model=openai-compatible``: LiteLLM → ``transformers serve`` of the same weights), greedy, same prompts, one sweep.

Prints how many completions are identical per answer kind, lists every difference with both texts, writes
``benchmarks/results/backend_consistency.json`` and builds the sweep's report (two curves that should coincide).

    python benchmarks/backend_consistency.py [--limit 8] [--prompt 1shot] [--structured false]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bioqa.rundir import read_metrics

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "backend_consistency.json"


def journal(run_dir: Path) -> dict[tuple[str, str], dict]:
    lines = (run_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return {(r["id"], r["kind"]): r for r in map(json.loads, filter(None, lines))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=8, help="first N questions of the demo batch")
    parser.add_argument("--prompt", default="1shot")
    parser.add_argument("--structured", default="false", help="true: schema-constrained exact answers")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bioqa.models.embedded import SMOLLM2_GGUF, smollm2_dir
    from bioqa.models.serve import ServedModel, model_spec, servable_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = servable_model(smollm2_dir(), SMOLLM2_GGUF, work_dir=tmp / "smollm2")
        sweep = ROOT / "logs" / "benchmarks" / f"backend_consistency_{args.prompt}"
        with ServedModel(model_spec(spec), device="cpu", startup_timeout_s=300) as server:
            env = {**os.environ, "BIOQA_API_BASE": server.api_base, "BIOQA_SERVED_MODEL": server.model}
            cmd = [
                sys.executable,
                "infer.py",
                "-m",
                "model=smollm2,openai-compatible",
                f"prompt={args.prompt}",
                f"prompt.structured={args.structured}",
                f"data.limit={args.limit}",
                "logger=none",
                "cache.enabled=false",
                "evaluation.bootstrap=200",
                f"hydra.sweep.dir={sweep}",
            ]
            result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
            if result.returncode != 0:
                raise SystemExit(result.stderr[-3000:])
    local, served = journal(sweep / "0"), journal(sweep / "1")
    same: Counter[str] = Counter()
    total: Counter[str] = Counter()
    differences = []
    for key, mine in local.items():
        theirs = served[key]
        total[key[1]] += 1
        if mine["completion"] == theirs["completion"]:
            same[key[1]] += 1
        else:
            differences.append({"id": key[0], "kind": key[1], "hf": mine["completion"], "served": theirs["completion"]})
    metrics = [read_metrics(sweep / run).flat() for run in ("0", "1")]
    headline = ("yesno.acc", "factoid.mrr", "list.f1", "ideal.rouge2_f1")
    table = Table(title=f"SmolLM2 in-process (hf) vs LiteLLM → transformers serve, {args.prompt}, greedy")
    for column in ("answers", "identical", "of"):
        table.add_column(column)
    for kind in sorted(total):
        table.add_row(kind, str(same[kind]), str(total[kind]))
    scores = Table(title="official measures of the two runs")
    for column in ("measure", "hf", "served"):
        scores.add_column(column)
    for name in headline:
        scores.add_row(name, *(f"{m.get(name, float('nan')):.4f}" for m in metrics))
    console = Console(width=160)
    console.print(table)
    console.print(scores)
    payload = {
        "prompt": args.prompt,
        "structured": args.structured,
        "questions": args.limit,
        "identical": dict(same),
        "requests": dict(total),
        "scores": {name: [m.get(name) for m in metrics] for name in headline},
        "differences": differences,
        "sweep_dir": str(sweep.relative_to(ROOT)),
    }
    RESULTS.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    subprocess.run([sys.executable, "evaluate.py", f"report={sweep}"], cwd=ROOT, check=False)
    print(f"wrote {RESULTS.relative_to(ROOT)}; report in {sweep / 'report'}")


if __name__ == "__main__":
    main()
