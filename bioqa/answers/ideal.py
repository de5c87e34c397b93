"""Ideal answers: one paragraph of free text (no schema); a JSON object holding the text is read too."""

from __future__ import annotations

import re

from bioqa.answers.base import AnswerStyle, ParsedAnswer, ParseMethod
from bioqa.answers.salvage import FENCE, structures
from bioqa.data import QUESTION_TYPES, Question

_IDEAL_KEYS = ("ideal_answer", "answer", "summary", "response", "text")
_LABEL = re.compile(r"^(?:final\s+|ideal\s+)?answer\s*:\s*", re.IGNORECASE)


class IdealStyle(AnswerStyle):
    """The paragraph with whitespace collapsed and an ``Answer:`` label removed."""

    name = "ideal"
    kind = "ideal"
    qtypes = QUESTION_TYPES

    def text(self, question: Question) -> str:
        if not question.ideal_answer:
            raise ValueError(f"question {question.id}: no golden ideal answer to render")
        return question.ideal_answer[0].strip()

    def read(self, text: str) -> ParsedAnswer:
        method: ParseMethod = "text"
        fenced = FENCE.fullmatch(text)
        if fenced:
            text = fenced.group(1).strip()
        if text.startswith("{"):  # a JSON object holding the answer
            for value in structures(text):
                lowered = {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else {}
                found = next((lowered[k] for k in _IDEAL_KEYS if isinstance(lowered.get(k), str)), None)
                if found:
                    text, method = found, "json"
                    break
        paragraph = _LABEL.sub("", " ".join(text.split()))
        if not paragraph:
            return ParsedAnswer(None, False, "no answer text")
        return ParsedAnswer(paragraph, True, method=method)


STYLE = IdealStyle()
