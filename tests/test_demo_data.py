"""The embedded demo batch is valid BioASQ golden data over the embedded demo corpus."""

from __future__ import annotations

import json
from collections import Counter

from bioqa.data import load_questions, pmid_of
from bioqa.resources import demo_corpus_path, demo_golden_path


def _corpus() -> dict[str, dict]:
    with open(demo_corpus_path(), encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle if line.strip()]
    assert len({d["pmid"] for d in docs}) == len(docs), "duplicate pmid in the demo corpus"
    return {d["pmid"]: d for d in docs}


def test_demo_batch_loads_and_covers_every_question_type():
    questions = load_questions(demo_golden_path())
    types = Counter(q.type for q in questions)
    assert 12 <= len(questions) <= 16
    assert set(types) == {"yesno", "factoid", "list", "summary"}
    assert {q.exact_answer for q in questions if q.type == "yesno"} == {"yes", "no"}
    for q in questions:
        assert q.documents and q.snippets and q.ideal_answer, q.id
        if q.type in ("factoid", "list"):
            assert q.exact_answer and all(synonyms for synonyms in q.exact_answer), q.id


def test_every_snippet_offset_reproduces_its_text():
    corpus = _corpus()
    checked = 0
    for q in load_questions(demo_golden_path()):
        for s in q.snippets:
            doc = corpus[pmid_of(s.document)]
            assert s.begin_section == s.end_section and s.begin_section in ("title", "abstract"), q.id
            assert doc[s.begin_section][s.offset_begin : s.offset_end] == s.text, (q.id, s.text)
            assert pmid_of(s.document) in {pmid_of(d) for d in q.documents}, q.id
            checked += 1
    assert checked >= 30
