"""Backend throughput on the embedded SmolLM2 (CPU): questions per minute for short yes/no answers.

(a) ``HFBackend`` in-process, batch_size 1 vs 8;  (b) ``LiteLLMBackend`` against ``transformers serve`` of the same
GGUF, concurrency 1 vs 8 (with and without the server's continuous batching). No completion cache anywhere.

    PYTHONPATH=. python benchmarks/backend_throughput.py [--questions 20] [--max-new-tokens 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import torch
from rich.console import Console
from rich.table import Table

from bioqa.models.base import Backend, ChatRequest, GenerationParams
from bioqa.models.embedded import SMOLLM2_GGUF, smollm2_dir
from bioqa.models.hf import HFBackend
from bioqa.models.litellm_backend import LiteLLMBackend
from bioqa.models.serve import ServedModel, servable_model
from bioqa.runs import package_versions, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "backend_throughput.json"
GENES = ["BRCA1", "TP53", "EGFR", "KRAS", "APOE", "CFTR", "HTT", "MTHFR", "PTEN", "VEGFA"]
DISEASES = ["breast cancer", "Alzheimer's disease", "cystic fibrosis", "Huntington's disease", "lung cancer"]


def questions(n: int, max_new_tokens: int) -> list[ChatRequest]:
    """Synthetic yes/no questions (written here, not BioASQ text), varied in length."""
    system = {"role": "system", "content": "You are a biomedical expert. Answer with 'yes' or 'no' only."}
    requests = []
    for i in range(n):
        gene, disease = GENES[i % len(GENES)], DISEASES[i % len(DISEASES)]
        context = " ".join(f"{gene} has been studied in cohort {k} of {disease} patients." for k in range(i % 4))
        user = {"role": "user", "content": f"{context} Is {gene} associated with {disease}?".strip()}
        requests.append(ChatRequest((system, user), GenerationParams(max_new_tokens=max_new_tokens)))
    return requests


def measure(backend: Backend, requests: list[ChatRequest]) -> dict:
    backend.generate(requests[:1])  # warm-up (first call pays lazy initialisation)
    start = time.perf_counter()
    completions = backend.generate(requests)
    seconds = time.perf_counter() - start
    failed = [c.error for c in completions if not c.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} requests failed, e.g. {failed[0]}")
    return {
        "questions": len(requests),
        "seconds": round(seconds, 2),
        "questions_per_minute": round(60 * len(requests) / seconds, 1),
        "completion_tokens": sum(c.completion_tokens for c in completions),
        "tokens_per_second": round(sum(c.completion_tokens for c in completions) / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (in-process and in the server)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    requests = questions(args.questions, args.max_new_tokens)
    rows: list[dict] = []
    meta = {
        "model": SMOLLM2_GGUF,
        "device": "cpu",
        "threads": args.threads,
        "max_new_tokens": args.max_new_tokens,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(("torch", "transformers", "litellm")),
    }

    def record(row: dict) -> None:  # written after every row: a crash keeps what was measured
        rows.append(row)
        write_json(args.out, {**meta, "results": rows})

    for batch_size in (1, 8):
        backend = HFBackend(smollm2_dir(), gguf_file=SMOLLM2_GGUF, batch_size=batch_size, device="cpu")
        record({"backend": "hf", "setting": f"batch_size={batch_size}", **measure(backend, requests)})
        backend.close()

    threads = {"OMP_NUM_THREADS": str(args.threads)}
    spec = servable_model(smollm2_dir(), SMOLLM2_GGUF, work_dir=tempfile.mkdtemp(prefix="smollm2-"))
    for continuous in (False, True):
        label = ", continuous batching" if continuous else ""
        try:
            with ServedModel(
                spec, device="cpu", continuous_batching=continuous, startup_timeout_s=300, env=threads
            ) as server:
                for concurrency in (1, 8):
                    backend = LiteLLMBackend(
                        f"openai/{spec}", api_base=server.api_base, concurrency=concurrency, context_window=8192
                    )
                    row = {"backend": "litellm+transformers serve", "setting": f"concurrency={concurrency}{label}"}
                    record({**row, **measure(backend, requests)})
        except (RuntimeError, TimeoutError) as error:  # e.g. a server mode unsupported on this machine
            record({"backend": "litellm+transformers serve", "setting": f"server{label}", "error": str(error)[-300:]})

    table = Table(title=f"SmolLM2-135M (GGUF Q4_1 → fp32) on CPU, {args.threads} thread(s)")
    for column in ("backend", "setting", "questions/min", "tokens/s", "seconds"):
        table.add_column(column)
    for row in rows:
        numbers = [str(row.get(key, "failed")) for key in ("questions_per_minute", "tokens_per_second", "seconds")]
        table.add_row(row["backend"], row["setting"], *numbers)
    Console().print(table)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
