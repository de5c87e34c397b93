"""An API-bound sweep run sequentially and with the joblib launcher, and the completion cache's write rate under
concurrent processes.

(a) 8 jobs of ``infer.py -m`` (the demo batch, 28 requests each) against a local OpenAI-compatible server that answers
after ``--latency`` seconds, with ``hydra/launcher=parallel`` at n_jobs 1, 4 and 8 (cache off: every job calls).
(b) ``CompletionCache.put`` from 1, 4 and 8 processes at once into one SQLite file: rows/s and lock errors.

    python benchmarks/sweep_parallel.py [--latency 0.25] [--jobs 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bioqa.rundir import read_metrics

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "sweep_parallel.json"


class SlowAPI(BaseHTTPRequestHandler):
    """OpenAI chat completions: a valid answer for the prompt's kind, after the server's latency."""

    latency = 0.25

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(self.latency)
        prompt = body["messages"][-1]["content"]
        if "'yes' or 'no'" in prompt:
            text = "yes"
        elif "entities" in prompt:
            text = '{"entities": ["BRCA1"]}'
        else:
            text = "A short ideal answer written by the benchmark server."
        payload = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def run_sweep(api_base: str, workdir: Path, jobs: int, n_jobs: int) -> dict:
    seeds = ",".join(str(i) for i in range(jobs))  # the same questions in every job: a grid of 8 identical configs
    cmd = [
        sys.executable,
        "infer.py",
        "-m",
        "model=openai-compatible",
        "model.backend.concurrency=1",
        "prompt=0shot",
        "logger=none",
        "cache.enabled=false",
        "evaluation.bootstrap=0",
        f"seed={seeds}",
        "hydra/launcher=parallel",
        f"hydra.launcher.n_jobs={n_jobs}",
        f"paths.log_dir={workdir}/logs",
        f"hydra.sweep.dir={workdir}/sweep-{n_jobs}",
    ]
    env = {**os.environ, "BIOQA_API_BASE": api_base, "BIOQA_SERVED_MODEL": "bench", "WANDB_MODE": "offline"}
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=1800)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    requests = sum(
        read_metrics(run).facts["accounting.requests"] for run in (workdir / f"sweep-{n_jobs}").glob("[0-9]*")
    )
    return {"n_jobs": n_jobs, "jobs": jobs, "requests": requests, "seconds": round(seconds, 1)}


def _put_rows(path: str, worker: int, rows: int, results) -> None:
    sys.path.insert(0, str(ROOT))
    from bioqa.models import ChatRequest, Completion, CompletionCache

    cache = CompletionCache(path)
    errors = 0
    for i in range(rows):
        request = ChatRequest(({"role": "user", "content": f"worker {worker} row {i}"},))
        try:
            cache.put(f"{worker}-{i}", "bench", "bench", request, Completion(text="yes", prompt_tokens=1))
        except Exception:
            errors += 1
    cache.close()
    results.put(errors)


def cache_write_rate(workdir: Path, processes: int, rows: int) -> dict:
    path = str(workdir / f"cache-{processes}.sqlite")
    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_put_rows, args=(path, w, rows, results)) for w in range(processes)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    errors = sum(results.get() for _ in workers)
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - start
    total = processes * rows
    return {
        "processes": processes,
        "rows": total,
        "seconds": round(seconds, 2),
        "rows_per_s": round(total / seconds),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.25, help="seconds the server waits before answering")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--rows", type=int, default=500, help="cache rows written per process")
    args = parser.parse_args()
    SlowAPI.latency = args.latency
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api_base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        sweeps = [run_sweep(api_base, Path(tmp), args.jobs, n) for n in (1, 4, 8)]
        caches = [cache_write_rate(Path(tmp), n, args.rows) for n in (1, 4, 8)]
    server.shutdown()
    for row in sweeps:
        row["speedup"] = round(sweeps[0]["seconds"] / row["seconds"], 2)
    table = Table(title=f"{args.jobs}-job API sweep, {args.latency} s per request, cache off")
    for column in ("n_jobs", "requests", "seconds", "speed-up"):
        table.add_column(column, justify="right")
    for row in sweeps:
        table.add_row(str(row["n_jobs"]), str(row["requests"]), str(row["seconds"]), f"{row['speedup']}×")
    cache_table = Table(title="completion cache: concurrent writers (one SQLite file, WAL)")
    for column in ("processes", "rows", "seconds", "rows/s", "errors"):
        cache_table.add_column(column, justify="right")
    for row in caches:
        cache_table.add_row(*(str(row[k]) for k in ("processes", "rows", "seconds", "rows_per_s", "errors")))
    console = Console()
    console.print(table)
    console.print(cache_table)
    payload = {
        "latency_s": args.latency,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "sweeps": sweeps,
        "cache_writes": caches,
    }
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
