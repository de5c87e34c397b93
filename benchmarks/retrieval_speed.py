"""Tantivy index build time, search throughput, and the retrieval-only Phase A baseline's official scores.

    python benchmarks/retrieval_speed.py [--corpus PATH] [--golden PATH] [--out benchmarks/results/retrieval_speed.json]

Defaults: the shared BioASQ snippet corpus and golden batch 11B3 when ``../shared/bioasq`` exists, else the
embedded demo corpus and batch. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bioqa.data import load_questions, submission_entry
from bioqa.pipeline.phase_a import PhaseAConfig, run_phase_a
from bioqa.resources import demo_corpus_path, demo_golden_path
from bioqa.retrieval import TantivyIndex, bow_query
from bioqa.runs import file_sha256, package_versions, write_json

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BIOQA_SHARED", ROOT.parent / "shared" / "bioasq"))
PHASE_A_KEYS = ("documents.MAP", "documents.MRec", "documents.MF1", "snippets.MF1", "snippets.MAP", "snippets.MRec")


def _defaults() -> tuple[Path, Path]:
    corpus = SHARED / "corpus" / "pubmed_snippets_7B-11B.jsonl"
    golden = SHARED / "golden" / "11B3_golden.json"
    if corpus.is_file() and golden.is_file():
        return corpus, golden
    return demo_corpus_path(), demo_golden_path()


def main() -> None:
    corpus_default, golden_default = _defaults()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=corpus_default)
    parser.add_argument("--golden", type=Path, default=golden_default)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "retrieval_speed.json")
    parser.add_argument("--repeats", type=int, default=3, help="index builds to time (median reported)")
    args = parser.parse_args()

    builds = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            TantivyIndex(args.corpus, cache, show_progress=False)
            builds.append(time.perf_counter() - start)
    cache = tempfile.TemporaryDirectory(prefix="bioqa-bench-")
    TantivyIndex(args.corpus, cache.name, show_progress=True)
    start = time.perf_counter()
    index = TantivyIndex(args.corpus, cache.name, show_progress=False)
    reopen_s = time.perf_counter() - start

    questions = load_questions(args.golden)
    queries = [bow_query(q.body) for q in questions]
    start = time.perf_counter()
    hits = [index.search(query, 50) for query in queries]
    search_s = time.perf_counter() - start

    config = PhaseAConfig(strategy="bm25")
    start = time.perf_counter()
    answers = run_phase_a(questions, None, index, config).answers
    baseline_s = time.perf_counter() - start

    scores: dict[str, float] = {}
    try:
        from bioqa.evaluation.api import evaluate_submission
    except ImportError:
        evaluate_submission = None
    if evaluate_submission is not None:
        report = evaluate_submission(
            args.golden, {"questions": [submission_entry(a) for a in answers]}, phase="A", rouge=False, bootstrap=0
        )
        scores = {k: report.metrics[k] for k in PHASE_A_KEYS}

    result = {
        "corpus": str(args.corpus),
        "corpus_sha256": file_sha256(args.corpus),
        "documents": index.num_docs,
        "golden": str(args.golden),
        "questions": len(questions),
        "index_build_s_median": statistics.median(builds),
        "index_build_s": builds,
        "index_reopen_s": reopen_s,
        "queries_per_s_k50": len(queries) / search_s,
        "mean_hits_k50": sum(len(h) for h in hits) / len(hits),
        "baseline_phase_a_s": baseline_s,
        "baseline_config": {
            "strategy": config.strategy,
            "search_k": config.search_k,
            "doc_prior_weight": config.doc_prior_weight,
            "embedding_model": config.embedding_model,
        },
        "baseline_scores_official_v9": scores,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "packages": package_versions(("bioqa", "tantivy")),
    }
    write_json(args.out, result)
    cache.cleanup()

    table = Table(title=f"tantivy retrieval — {args.corpus.name} ({index.num_docs} docs), {args.golden.name}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(f"index build (median of {len(builds)})", f"{result['index_build_s_median']:.2f} s")
    table.add_row("index reopen (cached)", f"{reopen_s * 1000:.1f} ms")
    table.add_row("queries/s (bag of words, k=50)", f"{result['queries_per_s_k50']:.0f}")
    table.add_row(f"baseline phase A, {len(questions)} questions", f"{baseline_s:.2f} s")
    for key, value in scores.items():
        table.add_row(f"baseline {key}", f"{value:.4f}")
    Console().print(table)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
