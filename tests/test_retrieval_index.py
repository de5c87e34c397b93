"""The tantivy index: real index files in tmp_path, Elasticsearch-style queries, LLM-grade malformed input."""

from __future__ import annotations

import json

import pytest

from bioqa.data import load_questions, pmid_of
from bioqa.resources import demo_corpus_path, demo_golden_path
from bioqa.retrieval import TantivyIndex, bow_query
from bioqa.retrieval.index import normalise_query, repair_query


def pmids(index: TantivyIndex, query: str, k: int = 3) -> list[str]:
    return [hit.pmid for hit in index.search(query, k)]


def test_index_holds_the_corpus_and_returns_raw_texts(demo_index):
    assert demo_index.num_docs == 41
    hit = demo_index.search("cystic fibrosis CFTR", 1)[0]
    docs = {d["pmid"]: d for d in map(json.loads, demo_corpus_path().read_text().splitlines())}
    doc = docs[hit.pmid]
    assert (hit.title, hit.abstract) == (doc["title"], doc["abstract"])
    assert hit.score > 0


def test_bag_of_words_query_finds_a_golden_document_for_every_demo_question(demo_index):
    for q in load_questions(demo_golden_path()):
        golden = {pmid_of(d) for d in q.documents}
        assert golden & set(pmids(demo_index, bow_query(q.body), 3)), q.body


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"HMG-CoA reductase" AND statins', "90000015"),
        ("title:imatinib^2 abstract:BCR-ABL", "90000003"),
        ("donepezil AND NOT metformin", "90000032"),
        ("+vancomycin +gram-negative", "90000013"),
        ("(tuberculosis OR mycobacterium) AND isoniazid", "90000024"),
    ],
)
def test_elasticsearch_syntax_is_honoured(demo_index, query, expected):
    assert pmids(demo_index, query, 1) == [expected]


def test_boolean_operators_filter(demo_index):
    assert pmids(demo_index, "donepezil AND memantine", 5) == ["90000032"]
    assert pmids(demo_index, "+donepezil -memantine", 5) == []
    assert pmids(demo_index, "title:memantine", 5) == []  # only in the abstract


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("“statins” AND “HMG-CoA reductase”", "90000015"),  # typographic quotes
        ('mesh:"cystic fibrosis" AND CFTR', "90000005"),  # unknown field
        ('"lung cancer"[tiab] AND smoking[MeSH Terms]', "90000037"),  # PubMed tags
        ("(vancomycin AND gram-negative", "90000013"),  # unbalanced parenthesis
        ('"neural tube defects AND folic', "90000041"),  # unbalanced quote
        ("vaccin* AND autism", "90000040"),  # wildcard
        ("scurvy~1", "90000029"),  # fuzzy mark
        ("Title: Imatinib", "90000003"),  # field name case and a space
        ("IN statins", "90000015"),  # reserved word
        ("tuberculosis OR", "90000024"),  # dangling operator
        ("query: p53", "90000036"),
    ],
)
def test_malformed_llm_queries_are_repaired(demo_index, query, expected):
    assert expected in pmids(demo_index, query, 3)


GARBAGE = ["", "AND", '"', ")))(((", "x^", "^^^", "~~", "\\", "{a TO b}", "year:[2010 TO 2020]", "a:b:c", "NOT", "*?"]


@pytest.mark.parametrize("query", GARBAGE)
def test_garbage_never_raises(demo_index, query):
    assert isinstance(demo_index.search(query, 5), list)


def test_rewrites_leave_quoted_phrases_alone():
    assert normalise_query('mesh:x "a:b c*" y*') == 'x "a:b c*" y'
    assert repair_query('(a AND "b) c" OR') == '(a AND "b) c")'


def test_index_is_built_once_per_corpus_content(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"pmid": "1", "title": "Alpha", "abstract": "beta gamma"}) + "\n")
    first = TantivyIndex(corpus, tmp_path / "cache", show_progress=False)
    monkeypatch.setattr(TantivyIndex, "_build", lambda *a: pytest.fail("rebuilt an index that was cached"))
    second = TantivyIndex(corpus, tmp_path / "cache", show_progress=False)
    assert second.path == first.path and pmids(second, "gamma") == ["1"]
    monkeypatch.undo()
    corpus.write_text(json.dumps({"pmid": "2", "title": "Delta", "abstract": "gamma"}) + "\n")
    third = TantivyIndex(corpus, tmp_path / "cache", show_progress=False)
    assert third.path != first.path and pmids(third, "gamma") == ["2"]


def test_bad_corpus_line_names_file_and_line(tmp_path):
    corpus = tmp_path / "broken.jsonl"
    corpus.write_text('{"pmid": "1", "title": "a", "abstract": "b"}\n{"title": "no pmid"}\n')
    with pytest.raises(ValueError, match=r"broken.jsonl, line 2"):
        TantivyIndex(corpus, tmp_path / "cache", show_progress=False)
    assert not list((tmp_path / "cache").glob("broken-*-v1"))
