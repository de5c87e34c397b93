"""Find an LLM-quoted passage in a document and return its exact official offsets.

Three steps, first success wins: exact substring; the same after folding case, whitespace runs and
typographic punctuation (offsets mapped back to the raw text); fuzzy alignment of the quote with windows
of 1–3 consecutive sentences, scored by the mean of the difflib character ratio and the Dice overlap of
content words (the first rewards near-copies, the second reordered paraphrases; each alone lets through
false friends). A quote that none of them places is not a snippet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from bioqa.retrieval.scoring import tokens

SECTIONS = ("title", "abstract")
_FOLD = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "‐": "-", "‑": "-", "\u00a0": " "})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\s{2,}")
_TRIM = " \t\n\"'`.,;:…-"


@dataclass(frozen=True)
class Span:
    """A located passage: ``section[begin:end] == text`` (end-exclusive)."""

    section: str
    begin: int
    end: int
    text: str
    method: str  # "exact", "normalized" or "fuzzy"
    score: float = 1.0


def _folded(text: str) -> tuple[str, list[int]]:
    """``text`` lower-cased with whitespace runs collapsed, and the raw index of every folded character."""
    chars: list[str] = []
    index: list[int] = []
    for i, char in enumerate(text.translate(_FOLD)):
        if char.isspace():
            if not chars or chars[-1] == " ":
                continue
            char = " "
        else:
            lower = char.lower()
            char = lower if len(lower) == 1 else char
        chars.append(char)
        index.append(i)
    return "".join(chars), index


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(begin, end)`` of the sentences of ``text`` (also split at runs of blanks), whitespace trimmed."""
    spans = []
    start = 0
    for match in [*_SENTENCE_END.finditer(text), None]:
        end = match.start() if match else len(text)
        chunk = text[start:end]
        if chunk.strip():
            left = start + len(chunk) - len(chunk.lstrip())
            spans.append((left, start + len(chunk.rstrip())))
        if match:
            start = match.end()
    return spans


def _span(section: str, text: str, begin: int, end: int, method: str, score: float = 1.0) -> Span:
    return Span(section, begin, end, text[begin:end], method, score)


def _dice(a: set[str], b: set[str]) -> float:
    return 2 * len(a & b) / (len(a) + len(b)) if len(a) >= 3 and b else 0.0


def locate(quote: str, title: str, abstract: str, min_ratio: float = 0.65, max_window: int = 3) -> Span | None:
    """Where ``quote`` sits in the document, or ``None``; ``min_ratio`` bounds the fuzzy step."""
    trimmed = quote.translate(_FOLD).strip().strip(_TRIM).strip()
    if len(trimmed) < 3:
        return None
    sections = {"title": title or "", "abstract": abstract or ""}
    for candidate in dict.fromkeys((quote.strip(), trimmed)):
        for name, text in sections.items():
            begin = text.find(candidate)
            if begin >= 0:
                return _span(name, text, begin, begin + len(candidate), "exact")
    needle, _ = _folded(trimmed)
    words = set(tokens(trimmed))
    for name, text in sections.items():
        hay, index = _folded(text)
        begin = hay.find(needle)
        if begin >= 0:
            return _span(name, text, index[begin], index[begin + len(needle) - 1] + 1, "normalized")
    best: Span | None = None
    for name, text in sections.items():
        sentences = sentence_spans(text)
        for i in range(len(sentences)):
            for j in range(i, min(i + max_window, len(sentences))):
                begin, end = sentences[i][0], sentences[j][1]
                candidate, _ = _folded(text[begin:end])
                if len(candidate) > 3 * len(needle) + 20:
                    break
                chars = SequenceMatcher(None, needle, candidate, autojunk=False).ratio()
                ratio = (chars + _dice(words, set(tokens(candidate)))) / 2
                if ratio >= min_ratio and (best is None or ratio > best.score):
                    best = _span(name, text, begin, end, "fuzzy", ratio)
    return best
