"""Yes/no answers: ``{"answer": "yes"|"no"}``; the paper's bare ``yes``/``no`` and prose are read too."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from bioqa.answers.base import AnswerStyle, ParsedAnswer
from bioqa.answers.salvage import structures, validated
from bioqa.data import Question

_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


class YesNoAnswer(BaseModel):
    """The structured yes/no answer."""

    model_config = ConfigDict(extra="forbid")

    answer: Literal["yes", "no"]


def yes_no_of(value: Any) -> str | None:
    """``"yes"``/``"no"`` held by a parsed structure (a bool, a leading word, ``{"answer": ...}``), else None."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        match = re.fullmatch(r"\W*(yes|no)\W*", value, re.IGNORECASE) or re.match(
            r"\W*(yes|no)\b", value, re.IGNORECASE
        )
        return match.group(1).lower() if match else None
    if isinstance(value, list) and value:
        return yes_no_of(value[0])
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        for key in ("answer", "exact_answer", "yesno", "response", "result"):
            if key in lowered:
                return yes_no_of(lowered[key])
        if len(value) == 1:
            return yes_no_of(next(iter(value.values())))
    return None


class YesNoStyle(AnswerStyle):
    """Bare word first (the paper asked for it), then any JSON/Python structure, then a stated or lone word."""

    name = "yesno"
    kind = "exact"
    qtypes = ("yesno",)
    schema_model: ClassVar[type[BaseModel]] = YesNoAnswer

    def text(self, question: Question) -> str:
        if question.exact_answer is None:
            raise ValueError(f"question {question.id}: no golden exact answer to render")
        return str(question.exact_answer).strip().lower()

    def golden(self, question: Question) -> dict[str, Any]:
        return {"answer": self.text(question)}

    def read(self, text: str) -> ParsedAnswer:
        if re.fullmatch(r"[^\w\[\]{}]*(yes|no)[^\w\[\]{}]*", text, re.IGNORECASE):
            return ParsedAnswer(_YES_NO.search(text).group(1).lower(), True, method="text")
        strict = validated(text, self.schema_model)
        if strict is not None:
            return ParsedAnswer(strict.answer, True, method="json")
        for value in structures(text):
            answer = yes_no_of(value) if isinstance(value, dict | list | bool) else None
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


STYLE = YesNoStyle()
