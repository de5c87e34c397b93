"""Phase A end to end through LiteLLM → ``transformers serve`` (the served path a GPU user takes with vLLM), requests
sent concurrently across questions: what ``model.backend.concurrency`` buys, with and without the server's
continuous batching.

The embedded SmolLM2-135M GGUF is dequantised once into ``cache/served/`` (``transformers serve`` cannot load a
GGUF) and served on loopback; each row is one ``infer.py task=phase_a`` run over the first ``--questions`` of the
batch with ``model=openai-compatible`` at one concurrency, a fresh completion cache and run directory. Rows
accumulate in the JSON across invocations (a row with the same questions, backend, batching and concurrency is
replaced), so each locked job can measure a few of them; ``--in-process`` adds the same run with the default model
in-process (hf backend, its own batching) for comparison:

    flock /work/cpu.lock python benchmarks/phase_a_served.py --questions 5 --concurrency 1 4 --batching off
    flock /work/cpu.lock python benchmarks/phase_a_served.py --questions 5 --batching --in-process

``model.backend.timeout_s`` is raised (``--timeout-s``): a server that answers one request at a time makes the
``concurrency``-th request wait for the others, which the default 60 s would count as a timeout and resend.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bioqa.models.embedded import SMOLLM2_GGUF, smollm2_dir
from bioqa.models.serve import ServedModel, model_spec, servable_model
from bioqa.rundir import PHASE_A_STATS, read_metrics
from bioqa.runs import file_sha256, package_versions, write_json

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BIOQA_SHARED", ROOT.parent / "shared" / "bioasq"))
RESULTS = ROOT / "benchmarks" / "results" / "phase_a_served.json"
EXPORT = ROOT / "cache" / "served" / "smollm2-135m-instruct"
MEASURES = ("documents.MAP", "documents.MF1", "snippets.MAP", "snippets.MF1")
STAGES = ("query", "broader", "extract", "rerank")  # the model stages (search: milliseconds)


def exported_model() -> str:
    """The served model's spec: the GGUF dequantised into :data:`EXPORT` once, reused afterwards."""
    if (EXPORT / "config.json").is_file():
        return model_spec(EXPORT)
    return servable_model(smollm2_dir(), SMOLLM2_GGUF, work_dir=EXPORT)


def served(server: ServedModel, concurrency: int, timeout_s: float) -> list[str]:
    """``infer.py`` overrides for ``model=openai-compatible`` against ``server``."""
    return [
        "model=openai-compatible",
        f"model.backend.model=openai/{server.model}",
        f"model.backend.api_base={server.api_base}",
        f"model.backend.concurrency={concurrency}",
        f"++model.backend.timeout_s={timeout_s}",
    ]


def infer(model: list[str], args: argparse.Namespace, work: Path) -> dict:
    """One ``infer.py task=phase_a`` run with the ``model`` overrides: its stats, measures and wall time."""
    run_dir = work / "run"
    command = [
        sys.executable,
        "infer.py",
        "task=phase_a",
        "retrieval=tantivy",
        f"retrieval.index.corpus_path={args.corpus}",
        f"data.golden={args.golden}",
        f"data.limit={args.questions}",
        "logger=none",
        *model,
        f"cache.path={work / 'completions.sqlite'}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "BIOQA_SHARED": str(SHARED), "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    started, load = time.perf_counter(), os.getloadavg()[0]
    with open(work / "infer.log", "wb") as log:
        try:
            code = subprocess.run(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=args.limit_s
            )
        except subprocess.TimeoutExpired:
            return {
                "error": f"infer.py ran past {args.limit_s} s",
                "load_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
            }
    seconds = time.perf_counter() - started
    if code.returncode not in (0, 3):  # 3: more model calls failed than errors.max_fraction, outputs written
        tail = (work / "infer.log").read_text(errors="replace")[-600:]
        return {
            "error": f"infer.py exited {code.returncode}: {tail}",
            "load_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
        }
    stats = json.loads((run_dir / PHASE_A_STATS).read_text())
    measures = read_metrics(run_dir).measures
    return {
        "infer_wall_s": round(seconds, 1),
        "phase_a_wall_s": stats["wall_s"],
        "model_calls": stats["model_calls"],
        "model_errors": stats["model_errors"],
        "unusable": stats["unusable"],  # replies that held nothing usable (counted failed by infer.py)
        "stages": {
            name: {
                k: stage[k] for k in ("wall_s", "model_calls", "model_errors", "unusable", "searches", "first_error")
            }
            for name, stage in stats["stages"].items()
        },
        "measures": {k: measures.get(k) for k in MEASURES},
        "load_1min": [round(load, 2), round(os.getloadavg()[0], 2)],  # at start and end
    }


def table(rows: list[dict]) -> Table:
    out = Table(title="Phase A via LiteLLM → transformers serve (SmolLM2-135M, CPU)")
    columns = ("questions", "backend", "batching", "concurrency", "Phase A s", *(f"{s} s" for s in STAGES))
    for column in (*columns, "calls / errors / unusable", "docs MAP", "snippets MAP", "load"):
        out.add_column(column, justify="right")
    for row in rows:
        key = [str(row["questions"]), row["backend"], row["batching"], str(row["concurrency"] or "—")]
        if "error" in row:
            out.add_row(*key, f"failed: {row['error'][:60]}")
            continue
        stage = [f"{row['stages'].get(s, {}).get('wall_s', 0):.0f}" for s in STAGES]
        scores = [f"{row['measures'][k]:.3f}" if row["measures"][k] is not None else "—" for k in MEASURES[::2]]
        calls = f"{row['model_calls']} / {row['model_errors']} / {row.get('unusable', '—')}"
        load = "–".join(f"{x:.1f}" for x in row["load_1min"])
        out.add_row(*key, f"{row['phase_a_wall_s']:.0f}", *stage, calls, *scores, load)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=5, help="the first N questions of the batch")
    parser.add_argument("--golden", type=Path, default=SHARED / "golden" / "11B3_golden.json")
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "pubmed_snippets_7B-11B.jsonl")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--batching",
        choices=["off", "on"],
        nargs="*",
        default=["off", "on"],
        help="the server's continuous batching (transformers serve --continuous-batching)",
    )
    parser.add_argument("--timeout-s", type=float, default=600.0, help="model.backend.timeout_s (per attempt)")
    parser.add_argument("--limit-s", type=float, default=540.0, help="stop a row's infer.py after this long")
    parser.add_argument("--in-process", action="store_true", help="also the default model in-process (hf backend)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.golden.is_file() or not args.corpus.is_file():
        raise SystemExit(f"needs the shared BioASQ data in {SHARED}")
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    rows: list[dict] = previous.get("rows", [])
    meta = {
        "model": SMOLLM2_GGUF,
        "served": "transformers serve, device cpu, dtype auto (the GGUF dequantised)",
        "golden": {"path": args.golden.name, "sha256": file_sha256(args.golden)},
        "corpus": {"path": args.corpus.name, "sha256": file_sha256(args.corpus)},
        "timeout_s": args.timeout_s,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "packages": package_versions(("torch", "transformers", "litellm")),
    }

    def record(row: dict) -> None:  # written after every row: a crash keeps what was measured
        same = ("questions", "backend", "batching", "concurrency")
        rows[:] = [r for r in rows if any(r[k] != row[k] for k in same)] + [row]
        rows.sort(key=lambda r: (r["questions"], r["backend"], r["batching"], r["concurrency"] or 0))
        write_json(args.out, {**meta, "rows": rows})
        print(json.dumps(row), file=sys.stderr)

    def measure(backend: str, batching: str, concurrency: int | None, model: list[str]) -> None:
        work = EXPORT.parent / "runs" / f"q{args.questions}-{backend.split()[0]}-{batching}-c{concurrency}"
        shutil.rmtree(work, ignore_errors=True)  # a fresh completion cache and run directory
        work.mkdir(parents=True)
        row = {"questions": args.questions, "backend": backend, "batching": batching, "concurrency": concurrency}
        record({**row, **infer(model, args, work)})

    if args.in_process:
        measure("hf in-process", "batch_size 8", None, [])

    spec = exported_model()
    for batching in args.batching:
        log = EXPORT.parent / "runs" / f"q{args.questions}-batching-{batching}-server.log"  # its batching stats
        log.parent.mkdir(parents=True, exist_ok=True)
        continuous = batching == "on"
        with ServedModel(
            spec, device="cpu", continuous_batching=continuous, startup_timeout_s=300, log_path=log
        ) as server:
            for concurrency in args.concurrency:
                measure("transformers serve", batching, concurrency, served(server, concurrency, args.timeout_s))
    Console(width=200).print(table(rows))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
