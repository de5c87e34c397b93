"""Phase A retrieval on a corpus that does not flatter: the shared relevant documents mixed with distractors.

    nice -n 10 python benchmarks/phase_a_benchmark.py                      # synthetic distractors (see below)
    nice -n 10 python benchmarks/phase_a_benchmark.py --index-dir indexes/pubmed   # a real PubMed index

The shared BioASQ corpus holds only documents relevant to some question, so BM25 looks near its ceiling
there. This script adds ``ratio × |corpus|`` distractors (``benchmarks/retrieval_distractors.py`` says how
they are made and how they differ from PubMed) and reports, per ratio and per method, the official Phase A
measures (documents and snippets; bootstrap 95 % CIs) on two golden batches:

* ``bm25``: the model-free baseline (bag-of-words question → tantivy BM25 → BM25 sentence selection);
* ``dense``: the question text → all-MiniLM-L6-v2 exact search (same sentence selection);
* ``hybrid``: both fused by reciprocal rank.

Encoding the whole corpus with MiniLM takes about an hour of a CPU core per 15k documents on a busy machine,
so dense and hybrid (and BM25 beside them, for a fair comparison) run on a *subset* corpus by default: every
document of the two batches' golden lists plus a seeded random sample of the other shared documents, up to
``--dense-docs`` (``0`` = the whole corpus at every ratio up to ``--dense-max-ratio``).

With ``--index-dir`` the same methods run unchanged on an index built by ``python -m bioqa.retrieval.ingest``
from the NLM baseline (no distractors; the ratio column reads ``pubmed``). The LLM pipeline (query → search →
extract → rerank) is not run here: on this machine's CPUs the embedded model needs minutes per question.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_distractors import DistractorGenerator

from bioqa.data import load_questions, submission_entry
from bioqa.evaluation.api import evaluate_submission
from bioqa.pipeline.phase_a import PhaseAConfig, run_phase_a
from bioqa.retrieval import TantivyIndex
from bioqa.retrieval.base import read_corpus
from bioqa.retrieval.dense import DenseIndex, HybridIndex
from bioqa.runs import file_sha256, package_versions, write_json

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BIOQA_SHARED", ROOT.parent / "shared" / "bioasq"))
KEYS = ("documents.MAP", "documents.MRec", "documents.MF1", "snippets.MAP", "snippets.MF1")


def mixed_corpus(corpus: Path, ratio: float, work: Path, seed: int) -> Path:
    """``corpus`` plus ``ratio × len(corpus)`` distractors, written once to ``work``."""
    docs = list(read_corpus(corpus))
    count = round(ratio * len(docs))
    path = work / f"{corpus.stem}+{count}distractors-seed{seed}.jsonl"
    if not path.is_file():
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            for doc in docs:
                out.write(json.dumps(doc, ensure_ascii=False) + "\n")
            for doc in DistractorGenerator(docs, seed=seed).documents(count):
                out.write(json.dumps(doc, ensure_ascii=False) + "\n")
        tmp.rename(path)
    return path


def subset_corpus(corpus: Path, goldens: list[Path], size: int, work: Path, seed: int) -> Path:
    """The golden documents of ``goldens`` plus random other documents of ``corpus``, ``size`` in all."""
    import random

    from bioqa.data import pmid_of

    wanted = {pmid_of(d) for g in goldens for q in load_questions(g) for d in q.documents}
    docs = list(read_corpus(corpus))
    others = [d for d in docs if d["pmid"] not in wanted]
    random.Random(seed).shuffle(others)
    chosen = [d for d in docs if d["pmid"] in wanted] + others[: max(0, size - len(wanted))]
    path = work / f"{corpus.stem}-subset{len(chosen)}-seed{seed}.jsonl"
    if not path.is_file():
        path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in chosen), encoding="utf-8")
    return path


def evaluate(index, goldens: list[Path], bootstrap: int) -> dict:
    config = PhaseAConfig(strategy="bm25", show_progress=False)
    result: dict = {}
    for golden in goldens:
        questions = load_questions(golden)
        start = time.perf_counter()
        run = run_phase_a(questions, None, index, config)
        seconds = time.perf_counter() - start
        report = evaluate_submission(
            golden,
            {"questions": [submission_entry(a) for a in run.answers]},
            phase="A",
            rouge=False,
            bootstrap=bootstrap,
        )
        result[golden.stem] = {
            "questions": len(questions),
            "metrics": {k: report.metrics[k] for k in KEYS},
            "ci95": {k: report.ci.get(k) for k in KEYS},
            "seconds": round(seconds, 2),
            "stages": run.stats["stages"],
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "pubmed_snippets_7B-11B.jsonl")
    parser.add_argument(
        "--golden", type=Path, nargs="+", default=[SHARED / "golden" / f"{b}_golden.json" for b in ("11B3", "11B4")]
    )
    parser.add_argument("--ratios", type=float, nargs="+", default=[0, 1, 4, 10], help="distractors per document")
    parser.add_argument("--methods", nargs="+", default=["bm25", "dense", "hybrid"])
    parser.add_argument("--dense-max-ratio", type=float, default=0, help="dense/hybrid only up to this ratio")
    parser.add_argument("--dense-docs", type=int, default=3000, help="subset corpus size for dense (0: all)")
    parser.add_argument("--index-dir", type=Path, help="a real PubMed index from bioqa.retrieval.ingest")
    parser.add_argument("--work", type=Path, default=ROOT / "cache" / "benchmark")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "phase_a_benchmark.json")
    parser.add_argument("--show", type=Path, nargs="+", help="only print the table of these result files")
    args = parser.parse_args()
    if args.show:
        print_table([run for path in args.show for run in json.loads(path.read_text())["runs"]])
        return
    args.work.mkdir(parents=True, exist_ok=True)

    import torch

    torch.set_num_threads(1)  # MiniLM on a CPU shared with other jobs: one thread thrashes least
    runs = []
    settings = [("pubmed", None)] if args.index_dir else [(r, r) for r in args.ratios]
    dense_methods = [m for m in args.methods if m != "bm25"]
    if dense_methods and args.dense_docs and not args.index_dir:
        settings = [("subset", None), *settings]
    for label, ratio in settings:
        if args.index_dir:
            bm25, corpus_info = TantivyIndex(index_dir=args.index_dir), {"index_dir": str(args.index_dir)}
        else:
            if label == "subset":
                path = subset_corpus(args.corpus, args.golden, args.dense_docs, args.work, args.seed)
            else:
                path = mixed_corpus(args.corpus, ratio, args.work, args.seed)
            bm25 = TantivyIndex(path, args.work / "tantivy", show_progress=True, threads=2)
            corpus_info = {"corpus": path.name, "sha256": file_sha256(path)}
        for method in args.methods:
            dense_here = label in ("subset", "pubmed") or (not args.dense_docs and ratio <= args.dense_max_ratio)
            if method != "bm25" and not dense_here:
                continue
            start = time.perf_counter()
            if method == "bm25":
                index = bm25
            else:
                dense = DenseIndex(bm25, show_progress=True)
                index = dense if method == "dense" else HybridIndex(dense)
            build_s = time.perf_counter() - start
            print(f"ratio {label}, {method}: {bm25.num_docs} documents (index ready in {build_s:.0f} s)", flush=True)
            runs.append(
                {
                    "ratio": label,
                    "method": method,
                    "documents": bm25.num_docs,
                    "index_ready_s": round(build_s, 1),
                    **corpus_info,
                    "batches": evaluate(index, args.golden, args.bootstrap),
                }
            )
            write_json(args.out, _payload(args, runs))

    print_table(runs)
    print(f"wrote {args.out}")


def print_table(runs: list[dict]) -> None:
    """The results as a table (one row per ratio, method and batch)."""
    table = Table(title="Phase A without a model: official measures as distractors grow (95 % bootstrap CI)")
    for column in ("ratio", "docs", "method", "batch", "doc MAP", "doc MRec", "snip MAP", "snip MF1", "s/q"):
        table.add_column(column, justify="right")
    for run in runs:
        for batch, res in run["batches"].items():
            m, ci = res["metrics"], res["ci95"]
            doc_map = f"{m['documents.MAP']:.4f}" + (
                f" [{ci['documents.MAP'][0]:.3f}, {ci['documents.MAP'][1]:.3f}]" if ci.get("documents.MAP") else ""
            )
            table.add_row(
                str(run["ratio"]),
                str(run["documents"]),
                run["method"],
                batch.replace("_golden", ""),
                doc_map,
                f"{m['documents.MRec']:.4f}",
                f"{m['snippets.MAP']:.4f}",
                f"{m['snippets.MF1']:.4f}",
                f"{res['seconds'] / res['questions']:.3f}",
            )
    Console(width=160).print(table)


def _payload(args: argparse.Namespace, runs: list) -> dict:
    return {
        "description": "model-free Phase A (strategy=bm25 sentence selection) over bm25/dense/hybrid search",
        "distractors": "benchmarks/retrieval_distractors.py (bigram chains seeded by corpus documents)",
        "seed": args.seed,
        "golden": [str(g) for g in args.golden],
        "bootstrap": args.bootstrap,
        "runs": runs,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "packages": package_versions(("bioqa", "tantivy", "sentence-transformers")),
    }


if __name__ == "__main__":
    main()
