"""Shared by the factoid and list styles: ``{"entities": [...]}`` read from JSON, truncated JSON or prose lists."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from bioqa.answers.base import AnswerStyle, ParsedAnswer
from bioqa.answers.salvage import structures, truncated, validated
from bioqa.data import Question

#: An entity longer than this (characters or words) is prose, not an exact answer.
MAX_ENTITY_CHARS, MAX_ENTITY_WORDS = 100, 12
_ANSWER_KEYS = ("entities", "answer", "answers", "exact_answer", "entity", "items", "list", "result", "results")
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)]|\(\d{1,3}\))\s+(?P<item>.*\S)")
_LEAD_IN = re.compile(
    r"^(?:the\s+)?(?:final\s+|exact\s+)?(?:answers?|entities|entity)\s*(?:(?:is|are)\b\s*:?|[:\-])\s*", re.IGNORECASE
)
_EXPLAINED = re.compile(r":\s|\s[-–—]\s")
_QUOTE_PAIRS = {'"': '"', "'": "'", "`": "`", "“": "”", "‘": "’", "*": "*", "_": "_"}


def clean_entity(text: str) -> str:
    """An entity string trimmed of whitespace, wrapping quotes/markdown and trailing punctuation."""
    text = " ".join(str(text).split())
    while True:
        before = text
        text = text.strip().rstrip(".,;:!?").lstrip(",;:!?")
        if len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
            text = text[1:-1]
        elif text[:2] == "**" and text[-2:] == "**":
            text = text[2:-2]
        if text == before:
            return text


def entity_strings(exact_answer: str | list[list[str]]) -> list[str]:
    """A factoid/list golden answer as the paper's flat list of entity strings (all synonyms, in order)."""
    if isinstance(exact_answer, str):
        return [exact_answer]
    return [synonym for synonyms in exact_answer for synonym in synonyms]


def _synonyms(item: Any) -> list[str]:
    if isinstance(item, str | int | float) and not isinstance(item, bool):
        return [str(item)]
    if isinstance(item, list | tuple):
        return [str(s) for s in item if isinstance(s, str | int | float) and not isinstance(s, bool)]
    if isinstance(item, dict):
        lowered = {str(k).lower(): v for k, v in item.items()}
        for key in ("name", "entity", "text", "answer", "value"):
            if isinstance(lowered.get(key), str):
                return [lowered[key]]
    return []


def _entity_items(value: Any) -> list[list[str]] | None:
    """The answer items a structure holds, or None if it holds none (an empty list is an answer)."""
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        key = next((k for k in _ANSWER_KEYS if k in lowered), None)
        if key is None:
            lists = [v for v in value.values() if isinstance(v, list)]
            if len(lists) != 1:
                return None
            return _entity_items(lists[0])
        return _entity_items(lowered[key]) if lowered[key] is not None else None
    if isinstance(value, list | tuple):
        return [_synonyms(item) for item in value]
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return [[str(value)]]
    return None


def _is_entity(text: str) -> bool:
    return 0 < len(text) <= MAX_ENTITY_CHARS and len(text.split()) <= MAX_ENTITY_WORDS


def _plausible(value: Any) -> bool:
    """A structure that may hold answer items (a citation like ``[1]`` in prose does not)."""
    if isinstance(value, list | tuple):
        return not value or any(isinstance(item, str | list | tuple | dict) for item in value)
    return True


def _prose_items(text: str) -> list[str] | None:
    """Entity strings from bulleted/numbered lines, one line per entity, or one separated line; None for prose."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    bullets = [m.group("item") for m in map(_BULLET.match, lines) if m]
    if bullets:  # "- **Fever**: seen in 80% of patients" names the entity before its explanation
        return [_EXPLAINED.split(_LEAD_IN.sub("", b), maxsplit=1)[0] for b in bullets]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    if len(lines) == 1:
        lines = [part for part in re.split(r";|,\s+|\s+and\s+", _LEAD_IN.sub("", lines[0])) if part.strip()]
    return lines if all(_is_entity(clean_entity(line)) for line in lines) else None


class EntitiesStyle(AnswerStyle):
    """Entity lists; ``limit`` caps the parsed items (factoid: 5 candidates), ``schema_model`` bounds decoding."""

    kind = "exact"
    limit: ClassVar[int | None] = None

    def text(self, question: Question) -> str:
        return json.dumps(self._golden_entities(question))

    def golden(self, question: Question) -> dict[str, Any]:
        return {"entities": self._golden_entities(question)[: self.limit]}

    def _golden_entities(self, question: Question) -> list[str]:
        if question.exact_answer is None:
            raise ValueError(f"question {question.id}: no golden exact answer to render")
        return entity_strings(question.exact_answer)

    def _finish(self, items: list[list[str]]) -> list[list[str]]:
        """Cleaned synonyms, empty items dropped, items deduplicated (first synonym, case-insensitively)."""
        result, seen = [], set()
        for synonyms in items:
            cleaned = list(dict.fromkeys(s for s in (clean_entity(x) for x in synonyms) if s))
            if cleaned and cleaned[0].casefold() not in seen:
                seen.add(cleaned[0].casefold())
                result.append(cleaned)
        return result[: self.limit]

    def read(self, text: str) -> ParsedAnswer:
        strict = validated(text, self.schema_model) if self.schema_model is not None else None
        if strict is not None:
            return ParsedAnswer(self._finish([[e] for e in strict.entities]), True, method="json")
        cut = truncated(text)  # the first bracket never closes: complete lists inside it are only parts
        items = _entity_items(cut) if cut is not None and _plausible(cut) else None
        if not items:
            objects_without_items = 0
            for value in structures(text):
                found = _entity_items(value) if _plausible(value) else None
                if found is not None:
                    return ParsedAnswer(self._finish(found), True, method="json")
                objects_without_items += isinstance(value, dict)
            if objects_without_items:
                return ParsedAnswer(None, False, f"JSON object without a list of entities: {text[:80]!r}")
            items = [[line] for line in _prose_items(text) or []]
        candidates = [kept for item in items if (kept := [c for c in map(clean_entity, item) if _is_entity(c)])]
        if not candidates:
            return ParsedAnswer(None, False, f"no entities found: {text[:80]!r}")
        return ParsedAnswer(self._finish(candidates), True, method="fallback")
