"""The answer contract, once: per answer style its pydantic schema, its golden answer rendered for prompts and
the tolerant parsing of model output; plus the formats of Phase A's model outputs.

One module per style (``yesno``, ``factoid``, ``entity_list``, ``ideal``), each holding ``STYLE``; the
registry picks a style by name or by (answer kind, question type). Adding a style: see CONTRIBUTING.md.
"""

from bioqa.answers.base import AnswerKind, AnswerStyle, ParsedAnswer, ParseMethod, schema_of
from bioqa.answers.entities import MAX_ENTITY_CHARS, MAX_ENTITY_WORDS, clean_entity, entity_strings
from bioqa.answers.entity_list import MAX_LIST_ITEMS
from bioqa.answers.phase_a import RANKING_SCHEMA, SNIPPETS_SCHEMA, parse_list, parse_query, titles_schema
from bioqa.answers.registry import (
    ANSWER_KINDS,
    DEFAULT_STYLES,
    answer_schema,
    answer_style,
    available_styles,
    check,
    parse_answer,
    style_for,
)

__all__ = [
    "ANSWER_KINDS",
    "DEFAULT_STYLES",
    "MAX_ENTITY_CHARS",
    "MAX_ENTITY_WORDS",
    "MAX_LIST_ITEMS",
    "RANKING_SCHEMA",
    "SNIPPETS_SCHEMA",
    "AnswerKind",
    "AnswerStyle",
    "ParseMethod",
    "ParsedAnswer",
    "answer_schema",
    "answer_style",
    "available_styles",
    "check",
    "clean_entity",
    "entity_strings",
    "parse_answer",
    "parse_list",
    "parse_query",
    "schema_of",
    "style_for",
    "titles_schema",
]
