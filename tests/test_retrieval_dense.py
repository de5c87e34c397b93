"""Dense (packaged all-MiniLM-L6-v2) and hybrid retrieval over real tantivy indexes in tmp_path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bioqa.data import load_questions, pmid_of
from bioqa.pipeline.phase_a import PhaseAConfig, run_phase_a
from bioqa.resources import demo_golden_path
from bioqa.retrieval import TantivyIndex
from bioqa.retrieval.dense import DenseIndex, HybridIndex, query_text
from bioqa.retrieval.ingest import main as ingest_main

QUESTIONS = load_questions(demo_golden_path())


@pytest.fixture(scope="module")
def bm25(tmp_path_factory) -> TantivyIndex:
    return TantivyIndex(cache_dir=tmp_path_factory.mktemp("tantivy"), show_progress=False)


@pytest.fixture(scope="module")
def dense(bm25) -> DenseIndex:
    return DenseIndex(bm25, show_progress=False)


def recall_at(index, k: int) -> float:
    found = [bool({pmid_of(d) for d in q.documents} & {h.pmid for h in index.search(q.body, k)}) for q in QUESTIONS]
    return sum(found) / len(found)


@pytest.mark.slow  # loads all-MiniLM-L6-v2 (seconds alone, longer on a busy machine)
def test_dense_search_finds_golden_documents_and_returns_stored_texts(dense, bm25):
    assert dense.num_docs == bm25.num_docs == 41 and dense.vectors.dtype == np.float16
    assert recall_at(dense, 3) >= 0.9
    hit = dense.search("Which chloride channel is defective in cystic fibrosis?", 1)[0]
    assert hit.pmid == "90000005" and hit.abstract == bm25.documents(["90000005"])["90000005"].abstract
    assert 0 < hit.score <= 1.0


@pytest.mark.slow  # loads all-MiniLM-L6-v2 (seconds alone, longer on a busy machine)
def test_vectors_are_stored_and_reused(dense, bm25, monkeypatch):
    info = json.loads((dense.path / "info.json").read_text())
    assert info["num_docs"] == 41 and info["model"] == "model"
    monkeypatch.setattr(DenseIndex, "_build", lambda *a: pytest.fail("re-encoded although nothing changed"))
    again = DenseIndex(bm25, show_progress=False)
    assert again.pmids == dense.pmids


@pytest.mark.slow  # loads all-MiniLM-L6-v2 (seconds alone, longer on a busy machine)
def test_an_updated_index_is_encoded_again(tmp_path, caplog):
    from test_retrieval_ingest import FIXTURES, gzipped

    gzipped("pubmed26n0001.xml", tmp_path / "src")
    out = tmp_path / "index"
    ingest_main([str(tmp_path / "src"), "--out", str(out), "--no-progress"])
    first = DenseIndex(TantivyIndex(index_dir=out), show_progress=False)
    assert "91000004" in first.pmids
    gzipped("pubmed26n0002.xml", tmp_path / "src")  # deletes 91000004, adds 91000008
    ingest_main([str(tmp_path / "src"), "--out", str(out), "--no-progress"])
    second = DenseIndex(TantivyIndex(index_dir=out), show_progress=False)
    assert "91000004" not in second.pmids and "91000008" in second.pmids
    assert any("another state of the index" in r.getMessage() for r in caplog.records)
    assert FIXTURES.is_dir()


@pytest.mark.slow  # loads all-MiniLM-L6-v2 (seconds alone, longer on a busy machine)
def test_hnsw_agrees_with_exact_search(bm25, dense):
    pytest.importorskip("usearch")
    approximate = DenseIndex(bm25, search="hnsw", show_progress=False)
    for q in QUESTIONS:
        assert [h.pmid for h in approximate.search(q.body, 3)] == [h.pmid for h in dense.search(q.body, 3)]
    assert (dense.path / "hnsw.usearch").is_file()


@pytest.mark.slow  # loads all-MiniLM-L6-v2 (seconds alone, longer on a busy machine)
def test_hybrid_fuses_both_rankings_by_reciprocal_rank(dense, bm25):
    hybrid = HybridIndex(dense, depth=10, rrf_k=60)
    query = "cystic fibrosis chloride channel"
    lexical = [h.pmid for h in bm25.search(query, 10)]
    semantic = [h.pmid for h in dense.search(query, 10)]
    hits, info = hybrid.search_traced(query, 5)
    expected = {p: sum(1 / (60 + r.index(p) + 1) for r in (lexical, semantic) if p in r) for p in {*lexical, *semantic}}
    assert [h.pmid for h in hits] == sorted(expected, key=lambda p: -expected[p])[:5]
    assert hits[0].score == pytest.approx(expected[hits[0].pmid])
    assert info["mode"] == "hybrid:strict" and info["bm25"] == len(lexical)
    assert recall_at(hybrid, 3) >= 0.9


@pytest.mark.slow  # loads all-MiniLM-L6-v2 (seconds alone, longer on a busy machine)
def test_model_free_phase_a_runs_on_dense_and_hybrid(dense):
    for index in (dense, HybridIndex(dense)):
        result = run_phase_a(QUESTIONS[:3], None, index, PhaseAConfig(strategy="bm25", show_progress=False))
        assert all(a.documents and a.snippets for a in result.answers)
        assert result.traces[0]["queries"][0]["source"] == "question"


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ('(imatinib OR "STI-571") AND title:"BCR-ABL"^2 -mouse', "imatinib STI-571 BCR-ABL mouse"),
        ("statins~1 AND NOT LDL", "statins LDL"),
        ("What is p53?", "What is p53"),
        ("", ""),
        ("AND OR ((", ""),
    ],
)
def test_query_strings_are_read_as_text(query, text):
    assert query_text(query) == text


@pytest.mark.slow  # loads all-MiniLM-L6-v2 (seconds alone, longer on a busy machine)
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"search": "ivf"}, "search='ivf': expected 'exact' or 'hnsw'"),
        ({"model_path": "/nonexistent/model"}, "not found"),
    ],
)
def test_bad_dense_options_are_clear_errors(bm25, kwargs, error):
    with pytest.raises((ValueError, FileNotFoundError), match=error):
        DenseIndex(bm25, show_progress=False, **kwargs)


@pytest.mark.slow  # loads all-MiniLM-L6-v2 (seconds alone, longer on a busy machine)
def test_empty_query_finds_nothing(dense):
    assert dense.search("", 5) == [] and dense.search("AND OR", 5) == [] and dense.search("x", 0) == []
