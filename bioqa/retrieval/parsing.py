"""Reading what a model wrote: a query string, or a JSON list under a key (code fences and chatter tolerated)."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.DOTALL)
_SYNTAX = re.compile(r'"|\(|\b(?:AND|OR|NOT)\b')
_LABEL = re.compile(r"^\s*(?:elasticsearch\s+)?(?:broader\s+)?query(?:\s+string)?\s*:\s*", re.IGNORECASE)


def parse_query(text: str) -> str:
    """The query string in a model's answer: a fenced block, ``{"query": ...}``, else the first line with query
    syntax (quotes, AND/OR, parentheses), else the first line that does not introduce another (``...:``)."""
    fenced = _FENCE.search(text)
    text = (fenced.group(1) if fenced else text).strip()
    obj = _first_json(text)
    if isinstance(obj, dict) and isinstance(obj.get("query"), str):
        return obj["query"].strip()
    lines = [_LABEL.sub("", line).strip().strip("`").strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.endswith(":")]
    return next((line for line in lines if _SYNTAX.search(line)), lines[0] if lines else "")


def _first_json(text: str) -> Any:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", text):
        try:
            return decoder.raw_decode(text, match.start())[0]
        except json.JSONDecodeError:
            continue
    return None


def parse_list(text: str, key: str = "snippets") -> list | None:
    """The list under ``key`` in the first JSON object of ``text`` (or a bare JSON list); ``None`` if absent."""
    fenced = _FENCE.search(text)
    obj = _first_json(fenced.group(1) if fenced else text)
    if isinstance(obj, dict):
        obj = obj.get(key)
    return obj if isinstance(obj, list) else None
