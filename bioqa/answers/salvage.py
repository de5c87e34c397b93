"""Finding JSON in what a model wrote: strict JSON or pydantic validation first, ``json_repair`` for the rest.

Structures are looked for in code fences, in the whole text, then embedded in prose (balanced brackets).
A bracketed span that is not strict JSON is repaired (single quotes, Python literals, trailing commas) only
when it starts like a literal (a quote, bracket or digit after the opening one), so that prose such as
``[the patient's record]`` or ``{This starts with a brace}`` stays prose. A structure cut off by the token
limit (its first bracket never closes) is closed by ``json_repair`` with its unfinished last item dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, TypeVar

import json_repair
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

FENCE = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
_OPEN = re.compile(r"[\[{]")
_LITERAL_START = re.compile(r"[\[{]\s*[\"'\[{\]}\d-]")
_COMPLETE_END = "\"'`]},:"


def without_thinking(text: str) -> str:
    """``text`` without ``<think>…</think>`` blocks (an unclosed one runs to the end), stripped."""
    return _THINK.sub("", text).strip()


def validated(text: str, model: type[M]) -> M | None:
    """``text`` as exactly the JSON ``model`` describes (what constrained decoding produces), else None."""
    try:
        return model.model_validate_json(text.strip())
    except ValidationError:
        return None


def balanced_end(text: str, start: int) -> int | None:
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


def _span_value(span: str) -> Any:
    """A bracketed span as JSON, else repaired when it starts like a literal; raises ValueError otherwise."""
    try:
        return json.loads(span)
    except json.JSONDecodeError:
        pass
    if not _LITERAL_START.match(span):
        raise ValueError("not a literal")
    return json_repair.loads(span, skip_json_loads=True)


def structures(text: str) -> Iterator[Any]:
    """JSON (or repairable literal) values in ``text``: code-fence contents, the whole text, then embedded ones."""
    for chunk in [*FENCE.findall(text), text]:
        chunk = chunk.strip()
        try:
            yield json.loads(chunk)
            continue
        except json.JSONDecodeError:
            pass
        position = 0
        while match := _OPEN.search(chunk, position):
            end = balanced_end(chunk, match.start())
            try:
                if end is None:
                    raise ValueError("unclosed")
                value = _span_value(chunk[match.start() : end])
            except ValueError:
                position = match.start() + 1
                continue
            yield value
            position = end


def _drop_last_item(value: Any) -> None:
    """Remove the innermost last item of a repaired structure (the one the token limit cut)."""
    container = value
    while True:
        if isinstance(container, list) and container:
            if isinstance(container[-1], list | dict) and container[-1]:
                container = container[-1]
                continue
            container.pop()
        elif isinstance(container, dict) and container:
            last = next(reversed(container))
            if isinstance(container[last], list | dict) and container[last]:
                container = container[last]
                continue
            del container[last]
        return


def truncated(text: str) -> Any:
    """The structure ``text`` opens but never closes, repaired without its unfinished last item; else None."""
    opening = _OPEN.search(text)
    if opening is None or balanced_end(text, opening.start()) is not None:
        return None
    span = text[opening.start() :].rstrip()
    if not _LITERAL_START.match(span):
        return None
    value = json_repair.loads(span, skip_json_loads=True)
    if span[-1] not in _COMPLETE_END:
        _drop_last_item(value)
    return value


def first_structure(text: str) -> Any:
    """The first structure in ``text``: a truncated one repaired when the first bracket never closes (what looks
    complete is then only a part of it), else the first complete one; None when there is none."""
    cut = truncated(text)
    if cut is not None:
        return cut
    return next(structures(text), None)
