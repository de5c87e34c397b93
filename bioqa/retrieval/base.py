"""What every search backend returns, the interface it implements, and corpus reading."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

#: Words that carry no retrieval signal in a question (kept short on purpose: biomedical terms stay).
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    between both but by can could did do does doing during each few for from further had has have having how
    i if in into is it its itself just may might more most much must no nor not of off on once only or other
    our out over own same should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom whose why will with
    would you your list name describe explain please""".split()  # noqa: SIM905 - a readable word list
)
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)


@dataclass(frozen=True)
class Hit:
    """One retrieved document; ``title``/``abstract`` are the raw corpus strings (offsets index into them)."""

    pmid: str
    score: float
    title: str
    abstract: str


@runtime_checkable
class SearchIndex(Protocol):
    """A document index queried with Elasticsearch/Lucene-style query strings."""

    def search(self, query: str, k: int = 10) -> list[Hit]:
        """The ``k`` best documents for ``query``; malformed queries degrade gracefully, never raise."""
        ...


def keywords(text: str) -> list[str]:
    """Content words of ``text`` in order, lower-cased, stopwords and duplicates removed."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in STOPWORDS and (len(word) > 1 or word.isdigit()):
            seen.setdefault(word, None)
    return list(seen)


def bow_query(text: str) -> str:
    """A plain bag-of-words query (terms OR-ed, each quoted so no character is read as syntax)."""
    return " ".join(f'"{word}"' for word in keywords(text))


def read_corpus(path: str | os.PathLike) -> Iterator[dict[str, str]]:
    """Documents of a corpus JSONL (``pmid``, ``title``, ``abstract``); a bad line names file and line."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                yield {"pmid": str(doc["pmid"]), "title": doc.get("title") or "", "abstract": doc.get("abstract") or ""}
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(f"{path}, line {number}: not a corpus document ({err!r})") from None


def search_traced(index: SearchIndex, query: str, k: int) -> tuple[list[Hit], dict]:
    """``index.search`` plus how the query was read, for backends that report it (``{}`` otherwise)."""
    traced = getattr(index, "search_traced", None)
    return traced(query, k) if traced is not None else (index.search(query, k), {})
