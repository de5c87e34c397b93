"""Typed records for BioASQ questions, snippets and answers (the pipeline's view of the data).

The official evaluator (``bioqa.evaluation.official``) reads raw JSON itself, quirks included;
these records are what bioqa's own pipeline produces and consumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

QuestionType = Literal["yesno", "factoid", "list", "summary"]
QUESTION_TYPES: tuple[QuestionType, ...] = ("yesno", "factoid", "list", "summary")

PUBMED_URL = "http://www.ncbi.nlm.nih.gov/pubmed/"
MAX_DOCUMENTS = 10
MAX_SNIPPETS = 10
MAX_FACTOID_CANDIDATES = 5


def pubmed_url(pmid: str | int) -> str:
    """The canonical document URL the golden files (and so the official evaluator) use."""
    return f"{PUBMED_URL}{str(pmid).strip()}"


def pmid_of(url: str) -> str:
    """The PubMed id at the end of a document URL (trailing slash ignored, as the evaluator does)."""
    return url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Snippet:
    """A passage of a PubMed document; offsets are end-exclusive character offsets in a section."""

    document: str
    text: str
    begin_section: str = "abstract"
    end_section: str = "abstract"
    offset_begin: int = 0
    offset_end: int = 0

    def to_json(self) -> dict:
        """The snippet in the official format (exactly these six keys)."""
        return {
            "document": self.document,
            "text": self.text,
            "beginSection": self.begin_section,
            "endSection": self.end_section,
            "offsetInBeginSection": self.offset_begin,
            "offsetInEndSection": self.offset_end,
        }


@dataclass
class Question:
    """One BioASQ question; golden fields are ``None``/empty in a test set."""

    id: str
    body: str
    type: QuestionType
    documents: list[str] = field(default_factory=list)
    snippets: list[Snippet] = field(default_factory=list)
    exact_answer: str | list[list[str]] | None = None
    ideal_answer: list[str] = field(default_factory=list)

    @property
    def has_golden_answer(self) -> bool:
        return self.exact_answer is not None or bool(self.ideal_answer)


@dataclass
class SystemAnswer:
    """What a system returns for one question (phase A fields, phase B fields, or both)."""

    id: str
    type: QuestionType
    body: str = ""
    documents: list[str] = field(default_factory=list)
    snippets: list[Snippet] = field(default_factory=list)
    exact_answer: str | list[list[str]] | None = None
    ideal_answer: str | None = None


def select_questions(
    questions: Sequence[Question], limit: int | None = None, types: Sequence[str] | None = None
) -> list[Question]:
    """Only the questions of ``types`` (``None``: all), and of those the first ``limit`` (``None``: all)."""
    chosen = [q for q in questions if types is None or q.type in types]
    return chosen[:limit] if limit is not None else chosen
