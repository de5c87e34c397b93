"""Indexing and query speed of the tantivy PubMed index, and the projection for the full baseline.

    nice -n 10 python benchmarks/retrieval_throughput.py [--docs 100000] [--latency-docs 1000000]

Documents are synthesised: a title of 12 and an abstract of 200 words drawn from a Zipf law over the words
of the shared BioASQ corpus (real PubMed: ~36M citations, ~60 % with an abstract of ~200–250 words, so the
synthetic documents are about as long as an average citation *with* an abstract — a conservative size).
Measured: PubMed XML parse rate (the ingest reader on a generated ``.xml.gz``), indexing documents/s with 1
and 2 writer threads (this machine has 2 cores; 4 threads are not measured here), index size per million
documents, and search latency p50/p95 (bag-of-words BioASQ questions, top 50) on an index of
``--latency-docs`` documents (``0``: the last indexing-speed build is reused; generating a million documents
takes over an hour on a CPU shared with other jobs). The 36M projection scales the 2-thread rate and the
size linearly (tantivy's merges make real builds somewhat slower than linear).
"""

from __future__ import annotations

import argparse
import gzip
import html
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bioqa.data import load_questions
from bioqa.resources import demo_corpus_path, demo_golden_path
from bioqa.retrieval import bow_query
from bioqa.retrieval.base import read_corpus
from bioqa.retrieval.index import TantivyIndex, open_index, tantivy_document
from bioqa.retrieval.pubmed import PubMedFile
from bioqa.runs import package_versions, write_json

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BIOQA_SHARED", ROOT.parent / "shared" / "bioasq"))
PUBMED_CITATIONS = 36_000_000


class ZipfDocuments:
    """Documents of words drawn from a Zipf law (exponent 1.1) over a corpus vocabulary, by frequency rank."""

    def __init__(self, corpus: Path, seed: int = 7):
        counts: dict[str, int] = {}
        for doc in read_corpus(corpus):
            for word in f"{doc['title']} {doc['abstract']}".lower().split():
                word = word.strip(".,;:()[]\"'")
                if word.isalnum():
                    counts[word] = counts.get(word, 0) + 1
        self.vocab = np.array(sorted(counts, key=lambda w: -counts[w]))
        ranks = np.arange(1, len(self.vocab) + 1, dtype=np.float64)
        self.p = ranks**-1.1 / (ranks**-1.1).sum()
        self.rng = np.random.default_rng(seed)

    def batch(self, start: int, count: int, title_words: int = 12, abstract_words: int = 200) -> list[dict]:
        words = self.vocab[self.rng.choice(len(self.vocab), size=(count, title_words + abstract_words), p=self.p)]
        return [
            {
                "pmid": str(90_000_000 + start + k),
                "title": " ".join(row[:title_words]),
                "abstract": " ".join(row[title_words:]),
                "year": 2000 + (start + k) % 25,
            }
            for k, row in enumerate(words)
        ]


def build(path: Path, gen: ZipfDocuments, docs: int, threads: int, chunk: int = 10_000) -> tuple[float, float, int]:
    """Index ``docs`` synthetic documents; (seconds indexing, seconds generating, bytes on disk)."""
    shutil.rmtree(path, ignore_errors=True)
    index = open_index(path, create=True)
    writer = index.writer(heap_size=256_000_000 * threads, num_threads=threads)
    indexing = generating = 0.0
    for start in range(0, docs, chunk):
        began = time.perf_counter()
        batch = gen.batch(start, min(chunk, docs - start))
        generating += time.perf_counter() - began
        began = time.perf_counter()
        for doc in batch:
            writer.add_document(tantivy_document(doc))
        indexing += time.perf_counter() - began
    began = time.perf_counter()
    writer.commit()
    writer.wait_merging_threads()
    indexing += time.perf_counter() - began
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return indexing, generating, size


def xml_parse_rate(gen: ZipfDocuments, work: Path, docs: int = 20_000) -> float:
    """Citations/s of the ingest reader on a generated NLM-format ``.xml.gz``."""
    path = work / "pubmed99n0001.xml.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<PubmedArticleSet>\n')
        for doc in gen.batch(0, docs):
            out.write(
                f'<PubmedArticle><MedlineCitation><PMID Version="1">{doc["pmid"]}</PMID><Article><Journal>'
                f"<JournalIssue><PubDate><Year>{doc['year']}</Year></PubDate></JournalIssue></Journal>"
                f"<ArticleTitle>{html.escape(doc['title'])}</ArticleTitle><Abstract>"
                f'<AbstractText Label="BACKGROUND">{html.escape(doc["abstract"])}</AbstractText></Abstract>'
                "</Article><MeshHeadingList><MeshHeading><DescriptorName>Humans</DescriptorName></MeshHeading>"
                "</MeshHeadingList></MedlineCitation></PubmedArticle>\n"
            )
        out.write("</PubmedArticleSet>\n")
    began = time.perf_counter()
    count = sum(1 for _ in PubMedFile(path))
    return count / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    corpus = SHARED / "corpus" / "pubmed_snippets_7B-11B.jsonl"
    golden = SHARED / "golden" / "11B3_golden.json"
    parser.add_argument("--corpus", type=Path, default=corpus if corpus.is_file() else demo_corpus_path())
    parser.add_argument("--golden", type=Path, default=golden if golden.is_file() else demo_golden_path())
    parser.add_argument("--docs", type=int, default=100_000, help="documents per indexing-speed build")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--latency-docs", type=int, default=0, help="0: reuse the last speed build")
    parser.add_argument("--work", type=Path, default=ROOT / "cache" / "throughput")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "retrieval_throughput.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    gen = ZipfDocuments(args.corpus)
    load_before = os.getloadavg()

    parse_rate = xml_parse_rate(gen, args.work)
    print(f"XML parse: {parse_rate:.0f} citations/s", flush=True)
    builds = {}
    for threads in args.threads:
        seconds, generating, size = build(args.work / f"speed-{threads}", gen, args.docs, threads)
        builds[threads] = {
            "docs": args.docs,
            "index_s": round(seconds, 1),
            "docs_per_s": round(args.docs / seconds),
            "generate_s": round(generating, 1),
            "bytes": size,
        }
        print(f"{threads} thread(s): {builds[threads]}", flush=True)
        if threads != args.threads[-1] or args.latency_docs:
            shutil.rmtree(args.work / f"speed-{threads}", ignore_errors=True)

    if args.latency_docs:
        latency_path = args.work / "latency"
        seconds, _, size = build(latency_path, gen, args.latency_docs, max(args.threads))
    else:
        latency_path, last = args.work / f"speed-{args.threads[-1]}", builds[args.threads[-1]]
        args.latency_docs, seconds, size = last["docs"], last["index_s"], last["bytes"]
    index = TantivyIndex(index_dir=latency_path)
    queries = [bow_query(q.body) for q in load_questions(args.golden)]
    for query in queries[:5]:
        index.search(query, 50)  # warm the page cache
    times = []
    for query in queries:
        began = time.perf_counter()
        index.search(query, 50)
        times.append((time.perf_counter() - began) * 1000)
    shutil.rmtree(latency_path, ignore_errors=True)

    best = builds[max(args.threads)]
    bytes_per_million = size / args.latency_docs * 1_000_000
    result = {
        "synthetic_documents": "Zipf(1.1) words over the shared corpus vocabulary: 12-word title, 200-word abstract",
        "xml_parse_citations_per_s": round(parse_rate),
        "indexing": {str(k): v for k, v in builds.items()},
        "latency_index": {"docs": args.latency_docs, "index_s": round(seconds, 1), "bytes": size},
        "index_gb_per_million_docs": round(bytes_per_million / 1e9, 3),
        "query_ms_p50": round(statistics.median(times), 2),
        "query_ms_p95": round(float(np.percentile(times, 95)), 2),
        "queries": len(times),
        "projection_36M": {
            "index_hours_at_best_threads": round(PUBMED_CITATIONS / best["docs_per_s"] / 3600, 2),
            "xml_parse_hours_single_process": round(PUBMED_CITATIONS / parse_rate / 3600, 2),
            "disk_gb": round(bytes_per_million * PUBMED_CITATIONS / 1e6 / 1e9, 1),
        },
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "note": "2 cores shared with other jobs: rates are lower bounds",
        },
        "packages": package_versions(("bioqa", "tantivy")),
        "argv": sys.argv[1:],
    }
    write_json(args.out, result)
    table = Table(title="tantivy PubMed index: throughput (synthetic documents)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("XML parse (ingest reader)", f"{parse_rate:.0f} citations/s")
    for threads, b in builds.items():
        table.add_row(f"indexing, {threads} thread(s), {b['docs']} docs", f"{b['docs_per_s']} docs/s")
    table.add_row("index size per 1M docs", f"{result['index_gb_per_million_docs']:.2f} GB")
    table.add_row(
        f"query latency p50 / p95 ({args.latency_docs} docs, k=50)",
        f"{result['query_ms_p50']:.1f} / {result['query_ms_p95']:.1f} ms",
    )
    p = result["projection_36M"]
    table.add_row(
        "36M docs: indexing / XML parse",
        f"{p['index_hours_at_best_threads']} h / {p['xml_parse_hours_single_process']} h",
    )
    table.add_row("36M docs: disk", f"{p['disk_gb']} GB")
    Console(width=140).print(table)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
