"""End-to-end inference throughput on a 100-question shared BioASQ batch with the embedded SmolLM2 (CPU).

The real pipeline (``run_inference``: prompt building, schema-constrained decoding, parsing, official scoring) with
``batch_size`` 1 vs 8, each with a fresh completion cache, then a re-run of the batched run from its cache (a new
backend and a new run directory: no model call, and the weights are never loaded).

    python benchmarks/infer_throughput.py [--golden ../shared/bioasq/golden/8B3_golden.json] [--prompt 0shot]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from bioqa.data import load_questions
from bioqa.models.cache import CachedBackend, CompletionCache
from bioqa.models.embedded import SMOLLM2_GGUF, smollm2_dir
from bioqa.models.hf import HFBackend
from bioqa.pipeline.answering import AnsweringConfig
from bioqa.pipeline.app import run_with_prompts
from bioqa.pipeline.inference import EvaluationOptions
from bioqa.prompts import PromptConfig
from bioqa.runs import file_sha256, package_versions, write_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "infer_throughput.json"
HEADLINE = ("yesno.macro_f1", "factoid.mrr", "list.f1", "accounting.parse_failure_rate")


def prompt_config(option: str, shared: Path) -> PromptConfig:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(overrides=[f"+prompt={option}", f"+paths.shared_dir={shared}"])
    return PromptConfig.from_dict(OmegaConf.to_container(cfg.prompt, resolve=True))


def one_run(golden: Path, questions, prompt: PromptConfig, batch_size: int, cache: Path, out: Path) -> dict:
    started = time.perf_counter()
    backend = CachedBackend(
        HFBackend(smollm2_dir(), gguf_file=SMOLLM2_GGUF, batch_size=batch_size), CompletionCache(cache)
    )
    setup_s = time.perf_counter() - started
    answering = AnsweringConfig(kinds=("exact",))
    result = run_with_prompts(
        questions,
        backend,
        prompt,
        out,
        answering=answering,
        golden_path=golden,
        evaluation=EvaluationOptions(bootstrap=0, rouge=False),
        progress=False,
    )
    metrics = result.metrics
    return {
        "batch_size": batch_size,
        "cached_rerun": metrics["accounting.from_cache"] == metrics["accounting.requests"],
        "weights_loaded": backend.backend._model is not None,
        "backend_setup_s": round(setup_s, 2),
        "run_s": metrics["accounting.rerun_wall_time_s"],
        "requests": metrics["accounting.requests"],
        "questions_per_minute": round(60 * len(questions) / metrics["accounting.rerun_wall_time_s"], 1),
        "prompt_tokens": metrics["accounting.prompt_tokens"],
        "completion_tokens": metrics["accounting.completion_tokens"],
        **{k: metrics.get(k) for k in HEADLINE},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--golden", type=Path, default=ROOT.parent / "shared/bioasq/golden/8B3_golden.json")
    parser.add_argument("--prompt", default="0shot")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    if not args.golden.exists():
        raise SystemExit(f"{args.golden} not found: this benchmark needs the shared BioASQ data")
    questions = [q for q in load_questions(args.golden) if q.type != "summary"][: args.limit]
    prompt = prompt_config(args.prompt, args.golden.parent.parent)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for batch_size in (1, 8):
            rows.append(
                one_run(
                    args.golden,
                    questions,
                    prompt,
                    batch_size,
                    tmp / f"cache{batch_size}.sqlite",
                    tmp / f"run{batch_size}",
                )
            )
        rows.append(one_run(args.golden, questions, prompt, 8, tmp / "cache8.sqlite", tmp / "rerun"))
    table = Table(
        title=f"infer.py pipeline, {len(questions)} exact-answer questions of {args.golden.name}, "
        f"SmolLM2-135M, {args.prompt}, CPU ({torch.get_num_threads()} threads)"
    )
    for column in ("setting", "run s", "questions/min", "weights loaded", *HEADLINE):
        table.add_column(column, justify="right")
    for row in rows:
        setting = "cached re-run" if row["cached_rerun"] else f"batch_size={row['batch_size']}"
        table.add_row(
            setting,
            f"{row['run_s']:.2f}",
            f"{row['questions_per_minute']:.1f}",
            str(row["weights_loaded"]),
            *(f"{row[k]:.3f}" for k in HEADLINE),
        )
    Console().print(table)
    write_json(
        RESULTS,
        {
            "golden": args.golden.name,
            "golden_sha256": file_sha256(args.golden),
            "questions": len(questions),
            "prompt": args.prompt,
            "answers": "exact (yes/no, factoid, list), schema-constrained",
            "device": "cpu",
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "packages": package_versions(("bioqa", "torch", "transformers", "xgrammar")),
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
