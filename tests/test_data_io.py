"""Reading golden files, rejecting malformed input clearly, and writing submissions the official evaluator accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bioqa.data import BioASQFormatError, Snippet, SystemAnswer, load_questions, parse_question, read_json
from bioqa.data.bioasq_json import canonical_document_url, submission_entry, write_submission
from bioqa.evaluation.official import evaluate_phase_a, evaluate_phase_b

URL = "http://www.ncbi.nlm.nih.gov/pubmed/"


def test_all_shared_golden_batches_load(shared_dir: Path):
    files = sorted((shared_dir / "golden").glob("*_golden.json"))
    assert len(files) == 25
    for path in files:
        questions = load_questions(path)
        assert 30 <= len(questions) <= 100, path
        assert all(q.body and q.type for q in questions)
        assert all(d.startswith(URL) for q in questions for d in q.documents)
        assert all(q.exact_answer is not None for q in questions if q.type != "summary"), path


def _question(**fields) -> dict:
    return {"id": "q1", "type": "factoid", "body": "What?", **fields}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (_question(id=""), "questions[0].id"),
        (_question(body=None), "body"),
        (_question(type="YesNo"), "type"),
        (_question(documents="http://x"), "documents"),
        (_question(snippets=[{"text": "no document"}]), "snippets.document"),
        (_question(snippets=[{"document": "d", "offsetInBeginSection": "x"}]), "snippets.offsetInBeginSection"),
        (_question(exact_answer=[["a"], 3]), "exact_answer"),
        (_question(type="yesno", exact_answer=["yes", "no"]), "exact_answer"),
        (_question(ideal_answer=3), "ideal_answer"),
        (_question(concepts="not a list"), "concepts"),
        (_question(triples={"s": "x"}), "triples"),
    ],
)
def test_wrong_types_name_file_question_and_field(raw, field, tmp_path: Path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"questions": [raw]}))
    with pytest.raises(BioASQFormatError) as err:
        load_questions(path)
    assert err.value.field == field and str(path) in str(err.value)
    if raw.get("id"):
        assert err.value.qid == "q1" and "question q1" in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty.json: not valid JSON (Expecting value"),
        (b'{"questions": [{"id": "\xff\xfe"}]}', "empty.json: not UTF-8 text (invalid start byte at byte 23)"),
        (b"null", "empty.json, field 'questions': expected an object"),
    ],
)
def test_unreadable_files_are_named(content: bytes, message: str, tmp_path: Path):
    (tmp_path / "empty.json").write_bytes(content)
    with pytest.raises(BioASQFormatError) as err:
        read_json(tmp_path / "empty.json")
    assert message in str(err.value) and str(tmp_path) in str(err.value)


def test_malformed_json_and_missing_file(tmp_path: Path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"questions": [')
    with pytest.raises(BioASQFormatError, match="not valid JSON") as err:
        read_json(broken)
    assert str(broken) in str(err.value)
    with pytest.raises(BioASQFormatError, match="file not found"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(BioASQFormatError, match="questions"):
        read_json(tmp_path / "list.json")


def test_edition_quirks_body_fallback_and_stale_copies():
    q = parse_question({"id": "q1", "type": "list", "_body": "Old body?", "statements": [], "triples": None})
    assert q.body == "Old body?"
    q = parse_question({"id": "q1", "type": "list", "body": "New?", "_body": "Old?", "_type": "yesno"})
    assert (q.body, q.type) == ("New?", "list")


def test_duplicate_ids_rejected(tmp_path: Path):
    path = tmp_path / "dup.json"
    path.write_text(json.dumps({"questions": [_question(), _question()]}))
    with pytest.raises(BioASQFormatError, match="duplicate"):
        load_questions(path)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("12345", URL + "12345"),
        ("https://pubmed.ncbi.nlm.nih.gov/12345/", URL + "12345"),
        ("http://www.ncbi.nlm.nih.gov/pubmed/12345 ", URL + "12345"),
        (URL + "12345", URL + "12345"),
        ("https://example.org/paper", "https://example.org/paper"),
    ],
)
def test_document_urls_are_canonicalised(url, canonical):
    assert canonical_document_url(url) == canonical


def _answers() -> list[SystemAnswer]:
    snippet = Snippet("https://pubmed.ncbi.nlm.nih.gov/111/", "Some text.", "abstract", "abstract", 0, 10)
    return [
        SystemAnswer("y1", "yesno", "Is it?", documents=["111", URL + "111"], snippets=[snippet], exact_answer="yes"),
        SystemAnswer("f1", "factoid", "What?", exact_answer=[["a"], ["b", "syn"], [""], ["c"], ["d"], ["e"], ["f"]]),
        SystemAnswer("l1", "list", "Which?", exact_answer=[["x"], ["y"]], ideal_answer="X and Y."),
        SystemAnswer("s1", "summary", "Describe.", ideal_answer="A summary."),
    ]


def test_written_submission_is_accepted_by_the_official_evaluator_and_round_trips(tmp_path: Path):
    path = write_submission(tmp_path / "submission.json", _answers())
    golden = {
        "questions": [
            {"id": "y1", "type": "yesno", "body": "Is it?", "documents": [URL + "111"], "exact_answer": "yes",
             "snippets": [{"document": URL + "111", "text": "Some text.", "beginSection": "abstract",
                           "endSection": "abstract", "offsetInBeginSection": 0, "offsetInEndSection": 10}]},
            {"id": "f1", "type": "factoid", "body": "What?", "exact_answer": [["b"]]},
            {"id": "l1", "type": "list", "body": "Which?", "exact_answer": [["x"], ["y"]]},
            {"id": "s1", "type": "summary", "body": "Describe."},
        ]
    }  # fmt: skip
    a = evaluate_phase_a(golden, path)
    assert a.metrics["documents.MAP"] == 1.0 and a.metrics["snippets.MF1"] == 1.0
    b = evaluate_phase_b(golden, path)
    assert b.metrics["yesno.acc"] == 1.0 and b.metrics["list.f1"] == 1.0
    assert b.metrics["factoid.mrr"] == 0.5  # "syn" synonym and the empty candidate dropped; 5 candidates kept

    data = read_json(path)
    assert data["questions"] == [submission_entry(a) for a in _answers()]
    factoid = data["questions"][1]["exact_answer"]
    assert factoid == [["a"], ["b"], ["c"], ["d"], ["e"]]
    assert data["questions"][0]["documents"] == [URL + "111"]
    assert set(data["questions"][0]["snippets"][0]) == {
        "document", "text", "beginSection", "endSection", "offsetInBeginSection", "offsetInEndSection"
    }  # fmt: skip
    reread = [parse_question(q, path, i) for i, q in enumerate(data["questions"])]
    assert [(q.id, q.type, q.body) for q in reread] == [(a.id, a.type, a.body) for a in _answers()]
    assert reread[2].ideal_answer == ["X and Y."] and reread[0].exact_answer == "yes"


def test_yesno_answer_other_than_yes_or_no_is_refused_when_writing():
    with pytest.raises(BioASQFormatError, match="y1"):
        submission_entry(SystemAnswer("y1", "yesno", "Is it?", exact_answer="maybe"))
