"""Where Phase A loses: each model stage answered perfectly (oracle), or by its model-free fallback, on real batches.

    nice -n 10 python benchmarks/phase_a_ablation.py [--distractor-ratio 1.0] [--bootstrap 1000]

Stages (``retrieval.phase_a.oracle_stages``, :mod:`bioqa.pipeline.phase_a_oracle`): ``query`` (a perfect search: the
golden documents in the index, in golden order), ``extract`` (each read document's golden snippets, verbatim, then
located to exact offsets like any model quote), ``rerank`` (the golden order). A stage that is not an oracle here
takes the pipeline's own fallback, as when the model fails: the query falls back to a bag-of-words search of the
question, the ranking to BM25 order of the extracted snippets. (Extraction has no model-free fallback; the LLM rows
need a model: ``python infer.py task=phase_a retrieval=tantivy retrieval.phase_a.oracle_stages=[...] model=...``.)
Rows: the model-free BM25 baseline; all three stages oracle (the pipeline's ceiling: what search depth, the
10-document / 10-snippet limits and quote alignment lose); then each of query and rerank replaced by its fallback.
Official documents/snippets measures with 95 % bootstrap CIs on 11B3 and 11B4, over the shared corpus (every
document is relevant to some question) and optionally with synthetic distractors mixed in.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phase_a_benchmark import mixed_corpus

from bioqa.data import load_questions, submission_entry
from bioqa.evaluation.api import evaluate_submission
from bioqa.models import Backend, ChatRequest, Completion
from bioqa.pipeline.phase_a import PROMPT_KEYS, PhaseAConfig, run_phase_a
from bioqa.retrieval import TantivyIndex
from bioqa.runs import file_sha256, package_versions, write_json

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BIOQA_SHARED", ROOT.parent / "shared" / "bioasq"))
LOCATED = ("exact", "normalized", "fuzzy")
KEYS = ("documents.MAP", "documents.MF1", "snippets.MAP", "snippets.MF1")
#: name → (strategy, oracle stages); stages not listed take the pipeline's fallback (the model "fails").
CONDITIONS = {
    "bm25 baseline (no model)": ("bm25", ()),
    "all oracle (ceiling)": ("llm", ("query", "extract", "rerank")),
    "query → bag of words": ("llm", ("extract", "rerank")),
    "rerank → BM25 order": ("llm", ("query", "extract")),
    "query and rerank fallbacks": ("llm", ("extract",)),
}


class Unavailable(Backend):
    """A model that never answers: every stage that asks it takes the pipeline's fallback."""

    kind = "unavailable"
    model_id = "unavailable"
    context_window = 1 << 20

    def count_tokens(self, messages) -> int:
        return 0

    def stream(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        for k, _ in enumerate(requests):
            yield k, Completion.failure("connection", "no model in this ablation (the stage's fallback is measured)")


def run(golden: Path, index: TantivyIndex, strategy: str, oracle: tuple[str, ...], bootstrap: int) -> dict:
    questions = load_questions(golden)
    prompts = {k: "{question}" for k in PROMPT_KEYS}  # never shown to a model here
    config = PhaseAConfig(strategy=strategy, prompts=prompts, oracle_stages=list(oracle), show_progress=False)
    started = time.perf_counter()
    result = run_phase_a(questions, Unavailable() if strategy == "llm" else None, index, config)
    seconds = time.perf_counter() - started
    submission = {"questions": [submission_entry(a) for a in result.answers]}
    report = evaluate_submission(golden, submission, phase="A", rouge=False, bootstrap=bootstrap)
    extraction = [t.get("extraction", {}) for t in result.traces]
    return {
        "questions": len(questions),
        "metrics": {k: report.metrics[k] for k in KEYS},
        "ci95": {k: report.ci.get(k) for k in KEYS},
        "seconds": round(seconds, 2),
        "quotes": sum(e.get("quotes", 0) for e in extraction),
        "located": {
            m: sum(e.get("located", {}).get(m, 0) for e in extraction) for m in ("exact", "normalized", "fuzzy")
        },
        "dropped": sum(e.get("dropped", 0) for e in extraction),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", nargs="+", default=["11B3", "11B4"])
    parser.add_argument("--distractor-ratio", type=float, default=0.0, help="distractors per shared document")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=ROOT / "cache" / "benchmarks")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    corpus = SHARED / "corpus" / "pubmed_snippets_7B-11B.jsonl"
    goldens = [SHARED / "golden" / f"{b}_golden.json" for b in args.batches]
    if not corpus.is_file() or not all(g.is_file() for g in goldens):
        raise SystemExit(f"needs the shared BioASQ data in {SHARED}")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.distractor_ratio:
        corpus = mixed_corpus(corpus, args.distractor_ratio, args.work, seed=0)
    index = TantivyIndex(corpus, args.work / f"tantivy-{corpus.stem}", show_progress=True)
    rows = []
    for name, (strategy, oracle) in CONDITIONS.items():
        for golden in goldens:
            result = run(golden, index, strategy, oracle, args.bootstrap)
            rows.append({"condition": name, "oracle_stages": list(oracle), "batch": golden.stem[:4], **result})
            print(f"{name} {golden.stem[:4]}: {result['metrics']}", file=sys.stderr)
    table = Table(title=f"Phase A ablation (shared corpus, {index.num_docs} documents; 95% bootstrap CIs)")
    for column in ("condition", "batch", "n", *KEYS, "quotes located / dropped"):
        table.add_column(column, justify="left" if column in ("condition", "batch") else "right")
    for r in rows:
        cells = [f"{r['metrics'][k]:.3f} [{r['ci95'][k][0]:.2f}, {r['ci95'][k][1]:.2f}]" for k in KEYS]
        located = sum(r["located"].values())
        table.add_row(r["condition"], r["batch"], str(r["questions"]), *cells, f"{located} / {r['dropped']}")
    Console(width=200).print(table)
    suffix = f"_distractors{args.distractor_ratio:g}" if args.distractor_ratio else ""
    out = args.out or ROOT / "benchmarks" / "results" / f"phase_a_ablation{suffix}.json"
    write_json(
        out,
        {
            "corpus": {"path": corpus.name, "sha256": file_sha256(corpus), "documents": index.num_docs},
            "batches": {g.stem: file_sha256(g) for g in goldens},
            "bootstrap": args.bootstrap,
            "rows": rows,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "packages": package_versions(),
        },
    )
    print(f"written {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
