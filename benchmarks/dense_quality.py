"""Does a faster dense encoder keep retrieval quality? Official Phase A measures of dense and hybrid search per encoder.

    flock /work/cpu.lock nice -n 10 python benchmarks/dense_quality.py --encoders torch:256 onnx-int8:256 onnx-int8:128

The corpus is ``benchmarks/phase_a_benchmark.py``'s 3,000-document subset (every golden document of 11B3 and 11B4
plus a seeded sample of the other shared documents; same seed, so ``torch:256`` reproduces that benchmark's dense
row). Each encoder (``backend:max_seq_length``, :mod:`bioqa.retrieval.encoders`) encodes the subset, then the
model-free Phase A (question text → search → BM25 sentence selection) is scored with the official measures and
bootstrap 95 % CIs. An encoder *holds* when its documents MAP lies inside the CI of ``torch:256`` (fp32, the
model's own length) for both batches and both methods.

Caveat: the shared corpus holds only the golden-snippet text of each abstract (~50 word pieces on average), so
few documents are cut by ``max_seq_length=128`` here (the JSON gives the share): the 128 verdict is weak evidence
for full PubMed abstracts, which usually exceed 128 word pieces.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phase_a_benchmark import evaluate, subset_corpus

from bioqa.retrieval import TantivyIndex
from bioqa.retrieval.base import read_corpus
from bioqa.retrieval.dense import DenseIndex, HybridIndex, _packaged_minilm, document_text
from bioqa.retrieval.encoders import EncoderSpec
from bioqa.runs import file_sha256, package_versions, write_json

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BIOQA_SHARED", ROOT.parent / "shared" / "bioasq"))
REFERENCE = "torch-256"


def spec_of(text: str) -> EncoderSpec:
    backend, _, length = text.partition(":")
    return EncoderSpec(backend, int(length or 256))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", nargs="+", type=spec_of, default=[spec_of("torch:256")])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "pubmed_snippets_7B-11B.jsonl")
    parser.add_argument(
        "--golden", type=Path, nargs="+", default=[SHARED / "golden" / f"{b}_golden.json" for b in ("11B3", "11B4")]
    )
    parser.add_argument("--docs", type=int, default=3000, help="subset corpus size")
    parser.add_argument("--work", type=Path, default=ROOT / "cache" / "benchmark")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dense_quality.json")
    parser.add_argument("--show", action="store_true", help="only print the table of --out")
    args = parser.parse_args()
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    if args.show:
        print_table(previous["runs"])
        return
    if not args.corpus.is_file():
        print(f"skipped: no shared corpus at {args.corpus} (set BIOQA_SHARED)", file=sys.stderr)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    path = subset_corpus(args.corpus, args.golden, args.docs, args.work, args.seed)
    bm25 = TantivyIndex(path, args.work / "tantivy", show_progress=False)
    corpus = {"corpus": path.name, "sha256": file_sha256(path), "documents": bm25.num_docs, **_pieces(path)}
    runs = {(r["encoder"], r["method"]): r for r in previous["runs"]}
    for spec in args.encoders:
        load = os.getloadavg()[0]
        start = time.perf_counter()
        dense = DenseIndex(bm25, encoder=spec, export_dir=ROOT / "cache" / "onnx", show_progress=True)
        ready = time.perf_counter() - start
        for method, index in (("dense", dense), ("hybrid", HybridIndex(dense))):
            runs[spec.label, method] = {
                "encoder": spec.label,
                "method": method,
                "index_ready_s": round(ready, 1),
                "load_1min": round(load, 2),
                "batches": evaluate(index, args.golden, args.bootstrap),
            }
            print(f"{spec.label} {method}: done", flush=True)
            write_json(args.out, _payload(args, corpus, list(runs.values())))
    print_table(list(runs.values()))
    print(f"wrote {args.out}")


def _pieces(path: Path) -> dict:
    """Word pieces per subset document (untruncated), and the share cut at 128 and 256."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(f"{_packaged_minilm()}/tokenizer.json")
    tokenizer.no_truncation()
    tokenizer.no_padding()
    texts = [document_text(d["title"], d["abstract"]) for d in read_corpus(path)]
    pieces = np.array([len(e.ids) for e in tokenizer.encode_batch(texts)])
    return {
        "word_pieces_mean": round(float(pieces.mean()), 1),
        "over_128_pieces": round(float((pieces > 128).mean()), 3),
        "over_256_pieces": round(float((pieces > 256).mean()), 3),
    }


def holds(runs: list[dict], run: dict) -> bool | None:
    """Whether ``run``'s documents MAP lies inside the reference encoder's CI on every batch (None: no reference)."""
    reference = next((r for r in runs if r["encoder"] == REFERENCE and r["method"] == run["method"]), None)
    if reference is None:
        return None
    return all(
        low <= run["batches"][batch]["metrics"]["documents.MAP"] <= high
        for batch, res in reference["batches"].items()
        for low, high in [res["ci95"]["documents.MAP"]]
    )


def print_table(runs: list[dict]) -> None:
    table = Table(
        title=f"dense encoders on the 3,000-document subset: documents MAP [95 % CI]; holds = inside {REFERENCE}'s CI"
    )
    for column in ("encoder", "method", "batch", "doc MAP", "snip MAP", "encode s", "holds"):
        table.add_column(column, justify="right")
    for run in sorted(runs, key=lambda r: (r["method"], r["encoder"])):
        verdict = holds(runs, run)
        for batch, res in run["batches"].items():
            m, ci = res["metrics"], res["ci95"]["documents.MAP"]
            table.add_row(
                run["encoder"],
                run["method"],
                batch.replace("_golden", ""),
                f"{m['documents.MAP']:.4f} [{ci[0]:.3f}, {ci[1]:.3f}]",
                f"{m['snippets.MAP']:.4f}",
                f"{run['index_ready_s']:.0f}",
                "—" if verdict is None else ("yes" if verdict else "NO"),
            )
    Console(width=140).print(table)


def _payload(args: argparse.Namespace, corpus: dict, runs: list[dict]) -> dict:
    for run in runs:
        run["holds"] = holds(runs, run)
    return {
        "description": "model-free Phase A over dense/hybrid search per encoder (backend-max_seq_length)",
        "reference": REFERENCE,
        "rule": "holds: documents MAP inside the reference's bootstrap 95% CI on every batch",
        "subset": corpus,
        "golden": [str(g) for g in args.golden],
        "bootstrap": args.bootstrap,
        "runs": sorted(runs, key=lambda r: (r["method"], r["encoder"])),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "packages": package_versions(("bioqa", "torch", "sentence-transformers", "onnxruntime")),
    }


if __name__ == "__main__":
    main()
