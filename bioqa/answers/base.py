"""The interface of an answer style: its JSON schema, its golden answer rendered for prompts, its parser."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from bioqa.answers.salvage import without_thinking
from bioqa.data import Question, QuestionType

AnswerKind = Literal["exact", "ideal"]
ParseMethod = Literal["json", "text", "fallback"]


@dataclass(frozen=True)
class ParsedAnswer:
    """``value``: ``"yes"|"no"`` (yes/no), ``list[list[str]]`` (factoid ≤ 5, list), ``str`` (ideal); None iff not ok.

    ``method``: ``json`` (a JSON/Python structure), ``text`` (the plain text asked for: a bare yes/no, an
    ideal answer), ``fallback`` (recovered from prose, lists or truncated JSON); None when nothing was found.
    ``details``: what a style reads besides the official answer (e.g. a stated confidence), else None.
    """

    value: str | list[list[str]] | None
    ok: bool
    error: str | None = None
    method: ParseMethod | None = None
    details: dict[str, Any] | None = None


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema for constrained decoding / ``response_format``, without pydantic's titles and
    without the class docstring (written for developers, not for the model)."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    schema = strip(model.model_json_schema())
    schema.pop("description", None)
    return schema


class AnswerStyle(ABC):
    """How one answer is asked for, shown and read back: a module in ``bioqa.answers`` holding ``STYLE``.

    ``schema_model``: the pydantic model of the structured answer (None: free text, no schema). ``text``
    is the golden answer as the value of a template's ``{answer}`` (the paper's free-text formats);
    ``structured`` is the golden answer as the schema's JSON (``prompt.structured=true``); ``read`` parses
    one model output (already stripped of ``<think>`` blocks, never empty) and never raises on text.
    """

    name: ClassVar[str]
    kind: ClassVar[AnswerKind]
    qtypes: ClassVar[tuple[QuestionType, ...]]
    schema_model: ClassVar[type[BaseModel] | None] = None

    def json_schema(self) -> dict[str, Any] | None:
        """The schema to constrain decoding with, or None for free text."""
        return schema_of(self.schema_model) if self.schema_model is not None else None

    @abstractmethod
    def text(self, question: Question) -> str:
        """The golden answer of ``question`` as the value of a template's ``{answer}``."""

    def structured(self, question: Question) -> str:
        """The golden answer as the JSON the schema describes (the free-text value when there is no schema)."""
        if self.schema_model is None:
            return self.text(question)
        return json.dumps(self.golden(question))

    def golden(self, question: Question) -> dict[str, Any]:
        """The golden answer as the schema's object (styles with a ``schema_model`` override this)."""
        raise NotImplementedError(f"answer style {self.name!r} has no structured form")

    def parse(self, text: str | None) -> ParsedAnswer:
        """One model output parsed; ``ok=False`` with a reason when nothing usable is in it."""
        cleaned = without_thinking(text or "")
        if not cleaned:
            return ParsedAnswer(None, False, "empty output")
        return self.read(cleaned)

    @abstractmethod
    def read(self, text: str) -> ParsedAnswer:
        """Parse a non-empty output (``<think>`` blocks removed)."""
