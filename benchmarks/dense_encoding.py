"""Encoding throughput of the packaged all-MiniLM-L6-v2 on this CPU, and the projection for PubMed's 36M citations.

    flock /work/cpu.lock nice -n 10 python benchmarks/dense_encoding.py [--backends torch onnx onnx-int8]

One cell per backend (:mod:`bioqa.retrieval.encoders`: torch fp32, ONNX Runtime fp32, ONNX Runtime int8), thread
count (torch's intra-op threads, ONNX Runtime's ``intra_op_num_threads``), batch size and ``max_seq_length`` (256:
the model's own limit; 128: the title and the start of the abstract). Each cell encodes the same ``--docs``
documents after a warm-up batch; documents/s is the wall-clock rate, and the 36M column is 36M / that rate.
Cells are merged into the JSON by key, so backends can be measured in separate runs (each under the CPU lock).

Documents are real biomedical sentences at PubMed length: the shared BioASQ corpus holds only the golden-snippet
parts of each abstract (the rest is padding), so consecutive documents' known text is joined until a document has
``--chars`` characters (default 1,500: a title and an abstract of ~220 words, about an average PubMed abstract; ~40 %
of PubMed citations have no abstract at all, so 36M × this length over-counts the work). Most then exceed 256 word
pieces, so every backend works at its full length — the conservative case. The ONNX exports are made once from the
packaged weights under ``--export-dir`` (nothing is downloaded). Skips (exit 0) when the shared corpus is absent.
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

from bioqa.retrieval.base import read_corpus
from bioqa.retrieval.dense import _packaged_minilm, document_text
from bioqa.retrieval.encoders import BACKENDS, EncoderSpec, load_encoder
from bioqa.runs import package_versions, write_json

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BIOQA_SHARED", ROOT.parent / "shared" / "bioasq"))
PUBMED_CITATIONS = 36_000_000


def pubmed_length_documents(corpus: Path, count: int, chars: int) -> list[str]:
    """``count`` texts of at least ``chars`` characters, each the known text of consecutive corpus documents."""
    texts, current = [], ""
    for doc in read_corpus(corpus):
        known = document_text(doc["title"], doc["abstract"])
        if not known:
            continue
        current = f"{current} {known}".strip()
        if len(current) >= chars:
            texts.append(current)
            current = ""
            if len(texts) == count:
                break
    return texts


def measure(encoder, texts: list[str], batch_size: int) -> float:
    """Documents/s of ``encoder`` over ``texts`` after a warm-up batch (of at most 16)."""
    encoder.encode(texts[:16], batch_size)
    start = time.perf_counter()
    vectors = encoder.encode(texts, batch_size)
    seconds = time.perf_counter() - start
    assert vectors.shape[0] == len(texts)
    return len(texts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "pubmed_snippets_7B-11B.jsonl")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 128], help="max_seq_length values")
    parser.add_argument("--docs", type=int, default=256, help="documents encoded per cell")
    parser.add_argument("--chars", type=int, default=1500, help="characters per document (title + abstract)")
    parser.add_argument("--export-dir", type=Path, default=ROOT / "cache" / "onnx")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dense_encoding.json")
    parser.add_argument("--show", action="store_true", help="only print the table of --out")
    args = parser.parse_args()
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {"cells": []}
    if args.show:
        print_table(previous["cells"])
        return
    if not args.corpus.is_file():
        print(f"skipped: no shared corpus at {args.corpus} (set BIOQA_SHARED)", file=sys.stderr)
        return

    import torch
    from tokenizers import Tokenizer

    model_path = _packaged_minilm()
    texts = pubmed_length_documents(args.corpus, args.docs, args.chars)
    tokenizer = Tokenizer.from_file(f"{model_path}/tokenizer.json")
    tokenizer.no_truncation()
    tokenizer.no_padding()
    pieces = [len(e.ids) for e in tokenizer.encode_batch(texts)]
    documents = {
        "count": len(texts),
        "chars_mean": round(float(np.mean([len(t) for t in texts])), 1),
        "word_pieces_mean": round(float(np.mean(pieces)), 1),
        **{f"over_{n}_pieces": round(float(np.mean([p > n for p in pieces])), 3) for n in args.lengths},
    }
    print(f"{len(texts)} documents: {documents}", flush=True)
    cells = {_key(c): c for c in previous["cells"]}
    for backend in args.backends:
        for length in args.lengths:
            spec = EncoderSpec(backend, length)
            for threads in args.threads:
                torch.set_num_threads(threads)
                encoder = load_encoder(model_path, spec, export_dir=args.export_dir, threads=threads)
                for batch_size in args.batch_sizes:
                    load_before = os.getloadavg()[0]
                    rate = measure(encoder, texts, batch_size)
                    cell = {
                        "backend": backend,
                        "max_seq_length": length,
                        "threads": threads,
                        "batch_size": batch_size,
                        "docs_per_s": round(rate, 2),
                        "pubmed_36m_hours": round(PUBMED_CITATIONS / rate / 3600, 1),
                        "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                        "measured": time.strftime("%Y-%m-%d %H:%M"),
                    }
                    cells[_key(cell)] = cell
                    print(json.dumps(cell), flush=True)
                    write_json(args.out, _payload(args, documents, list(cells.values())))
    print_table(list(cells.values()))
    print(f"wrote {args.out}")


def _key(cell: dict) -> tuple:
    return (cell["backend"], cell["max_seq_length"], cell["threads"], cell["batch_size"])


def print_table(cells: list[dict]) -> None:
    table = Table(title="all-MiniLM-L6-v2 encoding on this CPU (PubMed-length documents)")
    for column in ("backend", "max len", "threads", "batch", "docs/s", "36M docs (h)", "load before/after"):
        table.add_column(column, justify="right")
    for c in sorted(cells, key=_key):
        load = "/".join(f"{x:.1f}" for x in c["load_1min"])
        table.add_row(
            c["backend"],
            str(c["max_seq_length"]),
            str(c["threads"]),
            str(c["batch_size"]),
            f"{c['docs_per_s']:.1f}",
            f"{c['pubmed_36m_hours']:,.0f}",
            load,
        )
    Console(width=140).print(table)


def _payload(args: argparse.Namespace, documents: dict, cells: list[dict]) -> dict:
    return {
        "description": "all-MiniLM-L6-v2 documents/s per backend, max_seq_length, threads and batch size",
        "documents": {"source": f"{args.corpus.name}, known text joined to >= {args.chars} chars", **documents},
        "pubmed_citations": PUBMED_CITATIONS,
        "cells": sorted(cells, key=_key),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "processor": _cpu_name()},
        "packages": package_versions(("bioqa", "torch", "sentence-transformers", "onnxruntime", "onnx")),
    }


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


if __name__ == "__main__":
    main()
