"""BioASQ records: load and validate golden files and test sets, write official submissions."""

from bioqa.data.bioasq_json import (
    BioASQFormatError,
    load_questions,
    parse_question,
    read_json,
    submission_entry,
    write_submission,
)
from bioqa.data.records import (
    MAX_DOCUMENTS,
    MAX_FACTOID_CANDIDATES,
    MAX_SNIPPETS,
    QUESTION_TYPES,
    Question,
    QuestionType,
    Snippet,
    SystemAnswer,
    pmid_of,
    pubmed_url,
    select_questions,
)

__all__ = [
    "MAX_DOCUMENTS",
    "MAX_FACTOID_CANDIDATES",
    "MAX_SNIPPETS",
    "QUESTION_TYPES",
    "BioASQFormatError",
    "Question",
    "QuestionType",
    "Snippet",
    "SystemAnswer",
    "load_questions",
    "parse_question",
    "pmid_of",
    "pubmed_url",
    "read_json",
    "select_questions",
    "submission_entry",
    "write_submission",
]
