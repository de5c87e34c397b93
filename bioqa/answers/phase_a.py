"""What Phase A asks a model for: a search query, quotes extracted from an abstract, a reranked order of
snippets, Wikipedia article titles — one pydantic model each (the schema for constrained decoding) and
tolerant readers (fences, chatter, truncated JSON)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from bioqa.answers.base import schema_of
from bioqa.answers.salvage import FENCE, first_structure

_SYNTAX = re.compile(r'"|\(|\b(?:AND|OR|NOT)\b')
_LABEL = re.compile(r"^\s*(?:elasticsearch\s+)?(?:broader\s+)?query(?:\s+string)?\s*:\s*", re.IGNORECASE)


class SearchQuery(BaseModel):
    """A query string for the search index (free text is read too: the paper's prompts ask for plain text)."""

    query: str


class ExtractedSnippets(BaseModel):
    """Verbatim quotes from one abstract (each is located in the abstract afterwards)."""

    snippets: list[str]


class SnippetRanking(BaseModel):
    """Ids of the candidate snippets, most relevant first."""

    snippets: list[int]


#: Longest Wikipedia title asked for: biomedical article titles are far shorter, and the bound lets constrained
#: decoding close the JSON after at most ``k`` titles of at most this many characters.
MAX_TITLE_CHARS = 100


class ArticleTitles(BaseModel):
    """Wikipedia article titles relevant to a question."""

    model_config = ConfigDict(extra="forbid")

    articles: list[Annotated[str, Field(min_length=1, max_length=MAX_TITLE_CHARS)]]


SNIPPETS_SCHEMA: dict[str, Any] = schema_of(ExtractedSnippets)
RANKING_SCHEMA: dict[str, Any] = schema_of(SnippetRanking)


def titles_schema(k: int) -> dict[str, Any]:
    """:class:`ArticleTitles`' schema with at most ``k`` titles: unbounded, a small model lists titles until the
    token limit cuts the reply (5 of 5 title requests of 11B3 were cut at 64 tokens)."""
    schema = schema_of(ArticleTitles)
    schema["properties"]["articles"]["maxItems"] = k
    return schema


def parse_query(text: str) -> str:
    """The query string in a model's answer: a fenced block, ``{"query": ...}``, else the first line with query
    syntax (quotes, AND/OR, parentheses), else the first line that does not introduce another (``...:``)."""
    fenced = FENCE.search(text)
    text = (fenced.group(1) if fenced else text).strip()
    obj = first_structure(text)
    if isinstance(obj, dict) and isinstance(obj.get("query"), str):
        return obj["query"].strip()
    lines = [_LABEL.sub("", line).strip().strip("`").strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.endswith(":")]
    return next((line for line in lines if _SYNTAX.search(line)), lines[0] if lines else "")


def parse_list(text: str, key: str = "snippets") -> list | None:
    """The list under ``key`` in the first JSON object of ``text`` (or a bare JSON list, or a truncated one
    with its unfinished last item dropped); ``None`` if absent. Items are returned as found (callers check them)."""
    obj = first_structure(text)
    if isinstance(obj, dict):
        obj = obj.get(key)
    return obj if isinstance(obj, list) else None


_TAGGED = re.compile(r"##(.*?)##", re.DOTALL)
_HASHTAG = re.compile(r"#([^#]+)#")


def parse_tagged_query(text: str) -> str | None:
    """The seed paper's reading of a query reply: the first text wrapped in ``##`` tags, line breaks removed;
    ``None`` when no (non-blank) tagged text is present (callers fall back to :func:`parse_query`)."""
    found = _TAGGED.search(text)
    query = found.group(1).replace("\n", "").strip() if found else ""
    return query or None


def parse_hashtag_titles(text: str, limit: int | None = None) -> list[str]:
    """The seed paper's reading of a Wikipedia title reply: every ``#Title#`` (stripped, duplicates removed, at
    most ``limit``)."""
    titles = [t.strip() for t in _HASHTAG.findall(text)]
    return list(dict.fromkeys(t for t in titles if t and "\n" not in t))[:limit]
