"""Answer schemas for constrained decoding, and tolerant parsing of model output into BioASQ answers.

Parsing never raises on model output: JSON is looked for first (whole text, code fences, embedded in prose,
Python literals with single quotes), then the expected plain text (the paper's bare ``yes``/``no``, ideal
answers), then fallbacks (truncated JSON, bulleted or numbered lines, comma-separated phrases).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from bioqa.data import MAX_FACTOID_CANDIDATES

ParseMethod = Literal["json", "text", "fallback"]
#: An entity longer than this (characters or words) is prose, not an exact answer.
MAX_ENTITY_CHARS, MAX_ENTITY_WORDS = 100, 12
#: Bounds that make every schema-constrained answer finish: at most this many list items of at most
#: MAX_ENTITY_CHARS characters (BioASQ 7B–11B: 1 golden list of 1,150 has more than 20 items).
MAX_LIST_ITEMS = 20
_ANSWER_KEYS = ("entities", "answer", "answers", "exact_answer", "entity", "items", "list", "result", "results")
_IDEAL_KEYS = ("ideal_answer", "answer", "summary", "response", "text")
_FENCE = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)]|\(\d{1,3}\))\s+(?P<item>.*\S)")
_LEAD_IN = re.compile(
    r"^(?:the\s+)?(?:final\s+|exact\s+)?(?:answers?|entities|entity)\s*(?:(?:is|are)\b\s*:?|[:\-])\s*", re.IGNORECASE
)
_EXPLAINED = re.compile(r":\s|\s[-–—]\s")
_LABEL = re.compile(r"^(?:final\s+|ideal\s+)?answer\s*:\s*", re.IGNORECASE)
_OPEN = re.compile(r"[\[{]")
_QUOTED = re.compile(r'"((?:[^"\\\n]|\\.)*)"(?P<key>\s*:)?')
_SINGLE_QUOTED = re.compile(r"'((?:[^'\\\n]|\\.)*)'(?P<key>\s*:)?")
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_QUOTE_PAIRS = {'"': '"', "'": "'", "`": "`", "“": "”", "‘": "’", "*": "*", "_": "_"}


def answer_schema(qtype: str, kind: str) -> dict[str, Any] | None:
    """JSON schema of an exact answer (``{"answer": "yes"|"no"}``, ``{"entities": [...]}``); None for ideal.

    Entity lists and strings are bounded, so constrained decoding closes the JSON within about
    ``max_items * (MAX_ENTITY_CHARS + 3) + 20`` tokens even for a model that never chooses to stop."""
    _check(qtype, kind)
    if kind == "ideal":
        return None
    if qtype == "yesno":
        properties: dict[str, Any] = {"answer": {"type": "string", "enum": ["yes", "no"]}}
    else:
        entity = {"type": "string", "minLength": 1, "maxLength": MAX_ENTITY_CHARS}
        max_items = MAX_FACTOID_CANDIDATES if qtype == "factoid" else MAX_LIST_ITEMS
        entities: dict[str, Any] = {"type": "array", "items": entity, "maxItems": max_items}
        properties = {"entities": entities}
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


@dataclass(frozen=True)
class ParsedAnswer:
    """``value``: ``"yes"|"no"`` (yes/no), ``list[list[str]]`` (factoid ≤ 5, list), ``str`` (ideal); None iff not ok.

    ``method``: ``json`` (a JSON/Python structure), ``text`` (the plain text asked for: a bare yes/no, an
    ideal answer), ``fallback`` (recovered from prose, lists or truncated JSON); None when nothing was found.
    """

    value: str | list[list[str]] | None
    ok: bool
    error: str | None = None
    method: ParseMethod | None = None


def parse_answer(qtype: str, kind: str, text: str | None) -> ParsedAnswer:
    """Parse one model output; ``ok=False`` with a reason when nothing usable is in it (never raises on text)."""
    _check(qtype, kind)
    cleaned = _THINK.sub("", text or "").strip()
    if not cleaned:
        return ParsedAnswer(None, False, "empty output")
    if kind == "ideal":
        return _parse_ideal(cleaned)
    if qtype == "yesno":
        return _parse_yesno(cleaned)
    return _parse_entities(cleaned, limit=MAX_FACTOID_CANDIDATES if qtype == "factoid" else None)


def _check(qtype: str, kind: str) -> None:
    if kind not in ("exact", "ideal"):
        raise ValueError(f"answer kind must be 'exact' or 'ideal', got {kind!r}")
    if qtype not in ("yesno", "factoid", "list", "summary"):
        raise ValueError(f"unknown question type {qtype!r}")
    if kind == "exact" and qtype == "summary":
        raise ValueError("summary questions have no exact answer")


# --- finding structures -------------------------------------------------------------------------------------


def _balanced_end(text: str, start: int) -> int | None:
    """Index after the bracket closing the one at ``start`` (quotes respected), or None if unclosed."""
    depth, quote, escaped = 0, "", False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _literal(text: str) -> Any:
    """``text`` as JSON, else as a Python literal (single quotes, True/False); raises ValueError if neither."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError("not a literal") from None


def _structures(text: str) -> Iterator[Any]:
    """JSON or Python-literal values in ``text``: code-fence contents, the whole text, then embedded ones."""
    for chunk in [*_FENCE.findall(text), text]:
        chunk = chunk.strip()
        try:
            yield _literal(chunk)
            continue
        except ValueError:
            pass
        position = 0
        while match := _OPEN.search(chunk, position):
            end = _balanced_end(chunk, match.start())
            try:
                if end is None:
                    raise ValueError("unclosed")
                value = _literal(chunk[match.start() : end])
            except ValueError:
                position = match.start() + 1
                continue
            yield value
            position = end


# --- yes/no -------------------------------------------------------------------------------------------------


def _yes_no_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        match = re.fullmatch(r"\W*(yes|no)\W*", value, re.IGNORECASE) or re.match(
            r"\W*(yes|no)\b", value, re.IGNORECASE
        )
        return match.group(1).lower() if match else None
    if isinstance(value, list) and value:
        return _yes_no_of(value[0])
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        for key in ("answer", "exact_answer", "yesno", "response", "result"):
            if key in lowered:
                return _yes_no_of(lowered[key])
        if len(value) == 1:
            return _yes_no_of(next(iter(value.values())))
    return None


def _parse_yesno(text: str) -> ParsedAnswer:
    if re.fullmatch(r"[^\w\[\]{}]*(yes|no)[^\w\[\]{}]*", text, re.IGNORECASE):
        return ParsedAnswer(_YES_NO.search(text).group(1).lower(), True, method="text")
    for value in _structures(text):
        answer = _yes_no_of(value) if isinstance(value, dict | list | bool) else None
        if answer:
            return ParsedAnswer(answer, True, method="json")
    leading = re.match(r"[\W_]*(yes|no)\b", text, re.IGNORECASE)
    stated = re.search(r"\banswer\s*(?:is|:)\s*[\W_]*(yes|no)\b", text, re.IGNORECASE)
    if leading or stated:
        return ParsedAnswer((leading or stated).group(1).lower(), True, method="fallback")
    words = {w.lower() for w in _YES_NO.findall(text)}
    if len(words) == 1:
        return ParsedAnswer(words.pop(), True, method="fallback")
    reason = "both 'yes' and 'no' occur" if words else "no 'yes' or 'no' found"
    return ParsedAnswer(None, False, f"{reason}: {text[:80]!r}")


# --- factoid and list ---------------------------------------------------------------------------------------


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


def _finish(items: list[list[str]], limit: int | None) -> list[list[str]]:
    """Cleaned synonyms, empty items dropped, items deduplicated (first synonym, case-insensitively)."""
    result, seen = [], set()
    for synonyms in items:
        cleaned = list(dict.fromkeys(s for s in (clean_entity(x) for x in synonyms) if s))
        if cleaned and cleaned[0].casefold() not in seen:
            seen.add(cleaned[0].casefold())
            result.append(cleaned)
    return result[:limit]


def _is_entity(text: str) -> bool:
    return 0 < len(text) <= MAX_ENTITY_CHARS and len(text.split()) <= MAX_ENTITY_WORDS


def _quoted_strings(text: str) -> list[str]:
    """Complete string values (not keys) of a truncated JSON array/object or Python list."""
    for pattern in (_QUOTED, _SINGLE_QUOTED):
        found = [m.group(1) for m in pattern.finditer(text) if not m.group("key")]
        if found:
            strings = []
            for raw in found:
                try:
                    strings.append(json.loads(f'"{raw}"') if pattern is _QUOTED else raw)
                except json.JSONDecodeError:
                    strings.append(raw)
            return strings
    return []


def _fallback_items(text: str) -> list[str] | None:
    """Entity strings from text holding no complete structure; None if it reads as prose."""
    opening = _OPEN.search(text)
    if opening and _balanced_end(text, opening.start()) is None:
        strings = _quoted_strings(text[opening.start() :])
        if strings:
            return strings
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    bullets = [m.group("item") for m in map(_BULLET.match, lines) if m]
    if bullets:  # "- **Fever**: seen in 80% of patients" names the entity before its explanation
        return [_EXPLAINED.split(_LEAD_IN.sub("", b), maxsplit=1)[0] for b in bullets]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    if len(lines) == 1:
        lines = [part for part in re.split(r";|,\s+|\s+and\s+", _LEAD_IN.sub("", lines[0])) if part.strip()]
    return lines if all(_is_entity(clean_entity(line)) for line in lines) else None


def _plausible(value: Any) -> bool:
    """A structure that may hold answer items (a citation like ``[1]`` in prose does not)."""
    if isinstance(value, list | tuple):
        return not value or any(isinstance(item, str | list | tuple | dict) for item in value)
    return True


def _parse_entities(text: str, limit: int | None) -> ParsedAnswer:
    objects_without_items = 0
    for value in _structures(text):
        items = _entity_items(value) if _plausible(value) else None
        if items is not None:
            return ParsedAnswer(_finish(items, limit), True, method="json")
        objects_without_items += isinstance(value, dict)
    if objects_without_items:
        return ParsedAnswer(None, False, f"JSON object without a list of entities: {text[:80]!r}")
    candidates = [c for c in (clean_entity(s) for s in _fallback_items(text) or []) if _is_entity(c)]
    if not candidates:
        return ParsedAnswer(None, False, f"no entities found: {text[:80]!r}")
    return ParsedAnswer(_finish([[c] for c in candidates], limit), True, method="fallback")


# --- ideal --------------------------------------------------------------------------------------------------


def _parse_ideal(text: str) -> ParsedAnswer:
    method: ParseMethod = "text"
    fenced = _FENCE.fullmatch(text)
    if fenced:
        text = fenced.group(1).strip()
    if text.startswith("{"):  # a JSON object holding the answer
        for value in _structures(text):
            lowered = {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else {}
            found = next((lowered[k] for k in _IDEAL_KEYS if isinstance(lowered.get(k), str)), None)
            if found:
                text, method = found, "json"
                break
    paragraph = _LABEL.sub("", " ".join(text.split()))
    if not paragraph:
        return ParsedAnswer(None, False, "no answer text")
    return ParsedAnswer(paragraph, True, method=method)
