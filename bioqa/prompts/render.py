"""Text of one prompt turn: snippets, filled templates, and a golden answer rendered as an assistant turn."""

from __future__ import annotations

from collections.abc import Sequence

from bioqa.answers import AnswerKind, style_for
from bioqa.data import Question, Snippet
from bioqa.prompts.config import Template
from bioqa.prompts.template import fill


def format_snippets(snippets: Sequence[Snippet], style: str = "paper") -> str:
    """``paper``: the Python list of snippet dicts the paper put in its prompts; ``numbered``: ``[i] text`` lines."""
    if style == "paper":
        return str(
            [
                {
                    "offsetInBeginSection": s.offset_begin,
                    "offsetInEndSection": s.offset_end,
                    "text": s.text,
                    "beginSection": s.begin_section,
                    "endSection": s.end_section,
                    "document": s.document,
                }
                for s in snippets
            ]
        )
    if style == "numbered":
        return "\n".join(f"[{i}] {' '.join(s.text.split())}" for i, s in enumerate(snippets, 1))
    raise ValueError(f"unknown snippet format {style!r}; expected 'paper' or 'numbered'")


def user_turn(template: Template, question: Question, snippets: Sequence[Snippet], snippet_format: str) -> str:
    """The user message asking ``question`` with these snippets."""
    return fill(template.user, snippets=format_snippets(snippets, snippet_format), question=question.body)


def answer_turn(question: Question, kind: AnswerKind, template: Template, structured: bool = False) -> str:
    """The golden answer of ``question`` as an assistant turn, rendered the same way for shots and training.

    ``structured``: exact answers become the JSON of the template's answer style (``{"answer": "yes"}``,
    ``{"entities": [...]}``, at most 5 for factoid); otherwise the template's ``answer`` pattern is filled.
    """
    style = style_for(question.type, kind, template.style)
    if structured and style.schema_model is not None:
        return style.structured(question)
    return fill(template.answer, answer=style.text(question))
