"""Read BioASQ golden files / test sets and write submissions in the exact official format.

Edition quirks (7B–12B) handled when reading: ``body``/``type`` are authoritative (a few 9B/11B questions also carry
stale ``_body``/``_type`` copies, ignored; ``_body`` is used only when ``body`` is missing); ``concepts``,
``triples`` (7B–8B) and ``statements`` (8B) must be lists when present and are otherwise ignored; ids are non-empty
strings and unique per file. When writing, PubMed document URLs in any common form (bare PMID,
``https://pubmed.ncbi.nlm.nih.gov/<pmid>/``) are rewritten to the canonical form of the golden files, because the
official evaluator matches documents by exact string.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bioqa.data.records import (
    MAX_DOCUMENTS,
    MAX_FACTOID_CANDIDATES,
    MAX_SNIPPETS,
    QUESTION_TYPES,
    Question,
    Snippet,
    SystemAnswer,
    pubmed_url,
)
from bioqa.errors import BioQAError
from bioqa.rundir import write_json

_PUBMED_FORMS = re.compile(
    r"^\s*(?:(?:https?://)?(?:www\.)?(?:ncbi\.nlm\.nih\.gov/pubmed|pubmed\.ncbi\.nlm\.nih\.gov)/)?(\d+)/?\s*$"
)
_IGNORED_LIST_FIELDS = ("concepts", "triples", "statements")


def canonical_document_url(document: str) -> str:
    """``http://www.ncbi.nlm.nih.gov/pubmed/<pmid>`` for any common PubMed form; other strings unchanged."""
    match = _PUBMED_FORMS.match(document)
    return pubmed_url(match.group(1)) if match else document


class BioASQFormatError(BioQAError, ValueError):
    """Malformed BioASQ JSON; the message names the file, the question id and the field."""

    def __init__(self, path: str | os.PathLike | None, qid: str | None, field: str | None, problem: str):
        where = ", ".join(
            part
            for part in (
                str(path) if path else None,
                f"question {qid}" if qid else None,
                f"field '{field}'" if field else None,
            )
            if part
        )
        super().__init__(f"{where}: {problem}" if where else problem)
        self.path, self.qid, self.field, self.problem = path, qid, field, problem


def read_json(path: str | os.PathLike) -> dict:
    """Parse a BioASQ JSON file that must hold ``{"questions": [...]}``."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise BioASQFormatError(path, None, None, "file not found") from None
    except json.JSONDecodeError as err:
        raise BioASQFormatError(path, None, None, f"not valid JSON ({err})") from None
    except UnicodeDecodeError as err:
        raise BioASQFormatError(path, None, None, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise BioASQFormatError(path, None, "questions", 'expected an object {"questions": [...]}')
    return data


def _snippet(raw: Any, path, qid: str) -> Snippet:
    if not isinstance(raw, dict):
        raise BioASQFormatError(path, qid, "snippets", f"snippet is not an object: {raw!r:.80}")
    if "document" not in raw:
        raise BioASQFormatError(path, qid, "snippets.document", "snippet has no document")
    try:
        return Snippet(
            document=str(raw["document"]),
            text=str(raw.get("text", "")),
            begin_section=str(raw.get("beginSection", "abstract")),
            end_section=str(raw.get("endSection", raw.get("beginSection", "abstract"))),
            offset_begin=int(raw.get("offsetInBeginSection", 0)),
            offset_end=int(raw.get("offsetInEndSection", 0)),
        )
    except (TypeError, ValueError):
        raise BioASQFormatError(path, qid, "snippets.offsetInBeginSection", "offsets must be integers") from None


def _exact_answer(raw: Any, qtype: str, path, qid: str) -> str | list[list[str]] | None:
    if raw is None:
        return None
    if qtype == "yesno":
        if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str):
            raw = raw[0]  # a few early golden files wrap yes/no in a list
        if not isinstance(raw, str):
            raise BioASQFormatError(path, qid, "exact_answer", f"yes/no answer must be a string, got {raw!r:.80}")
        return raw.strip().lower()
    if qtype in ("factoid", "list"):
        if isinstance(raw, str):
            return [[raw]]
        if not isinstance(raw, list):
            raise BioASQFormatError(path, qid, "exact_answer", f"expected a list of lists, got {raw!r:.80}")
        out: list[list[str]] = []
        for item in raw:
            synonyms = item if isinstance(item, list) else [item]
            if not all(isinstance(s, str) for s in synonyms):
                raise BioASQFormatError(path, qid, "exact_answer", f"answer items must be strings: {item!r:.80}")
            out.append(list(synonyms))
        return out
    return None


def _ideal(raw: Any, path, qid: str) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return list(raw)
    raise BioASQFormatError(path, qid, "ideal_answer", "expected a string or a list of strings")


def parse_question(raw: Any, path: str | os.PathLike | None = None, index: int = 0) -> Question:
    """Validate one raw question object (any edition 7B–12B) into a :class:`Question`."""
    if not isinstance(raw, dict):
        raise BioASQFormatError(path, None, f"questions[{index}]", "question is not an object")
    qid = raw.get("id")
    if not isinstance(qid, str) or not qid.strip():
        raise BioASQFormatError(path, None, f"questions[{index}].id", f"missing or empty question id: {qid!r:.40}")
    body = raw.get("body", raw.get("_body"))
    if not isinstance(body, str) or not body.strip():
        raise BioASQFormatError(path, qid, "body", "missing or empty question text")
    qtype = raw.get("type")
    if qtype not in QUESTION_TYPES:
        raise BioASQFormatError(path, qid, "type", f"unknown question type {qtype!r}; expected one of {QUESTION_TYPES}")
    documents = raw.get("documents") or []
    if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
        raise BioASQFormatError(path, qid, "documents", "expected a list of document URLs")
    for name in _IGNORED_LIST_FIELDS:
        if raw.get(name) is not None and not isinstance(raw[name], list):
            raise BioASQFormatError(path, qid, name, f"expected a list, got {type(raw[name]).__name__}")
    snippets_raw = raw.get("snippets") or []
    if not isinstance(snippets_raw, list):
        raise BioASQFormatError(path, qid, "snippets", "expected a list of snippet objects")
    return Question(
        id=qid,
        body=body.strip(),
        type=qtype,
        documents=list(documents),
        snippets=[_snippet(s, path, qid) for s in snippets_raw],
        exact_answer=_exact_answer(raw.get("exact_answer"), qtype, path, qid),
        ideal_answer=_ideal(raw.get("ideal_answer"), path, qid),
    )


def load_questions(path: str | os.PathLike) -> list[Question]:
    """Load a golden file or a test set; duplicate ids are an error."""
    data = read_json(path)
    questions = [parse_question(raw, path, i) for i, raw in enumerate(data["questions"])]
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise BioASQFormatError(path, q.id, "id", "duplicate question id")
        seen.add(q.id)
    return questions


def submission_entry(answer: SystemAnswer) -> dict:
    """One question of a submission in the exact official format, limits enforced."""
    entry: dict[str, Any] = {"id": answer.id, "type": answer.type, "body": answer.body}
    if answer.documents:
        entry["documents"] = list(dict.fromkeys(canonical_document_url(d) for d in answer.documents))[:MAX_DOCUMENTS]
    if answer.snippets:
        entry["snippets"] = [
            {**s.to_json(), "document": canonical_document_url(s.document)} for s in answer.snippets[:MAX_SNIPPETS]
        ]
    exact = answer.exact_answer
    if answer.type == "yesno" and exact is not None:
        if exact not in ("yes", "no"):
            raise BioASQFormatError(
                None, answer.id, "exact_answer", f"yes/no answer must be 'yes' or 'no', got {exact!r}"
            )
        entry["exact_answer"] = exact
    elif answer.type in ("factoid", "list") and exact is not None:
        items = [[str(syn[0])] for syn in exact if syn and str(syn[0]).strip()]
        if answer.type == "factoid":
            items = items[:MAX_FACTOID_CANDIDATES]
        entry["exact_answer"] = items
    if answer.ideal_answer is not None:
        entry["ideal_answer"] = answer.ideal_answer
    return entry


def write_submission(path: str | os.PathLike, answers: Iterable[SystemAnswer]) -> Path:
    """Write a submission the official evaluator accepts (atomic replace)."""
    return write_json(path, {"questions": [submission_entry(a) for a in answers]})
