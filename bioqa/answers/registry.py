"""Answer styles by name, and the default style of each (answer kind, question type).

A style named ``x`` is the ``STYLE`` of module ``bioqa.answers.x`` (or of the module a dotted name such as
``mypackage.my_style`` names), so adding a style is adding that module; a prompt template selects it with
``style: x`` (see CONTRIBUTING.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from bioqa.answers.base import AnswerKind, AnswerStyle, ParsedAnswer
from bioqa.data import QUESTION_TYPES
from bioqa.errors import ConfigError

ANSWER_KINDS: tuple[AnswerKind, ...] = ("exact", "ideal")
#: The style each (answer kind, question type) gets unless its prompt template names another.
DEFAULT_STYLES: dict[tuple[str, str], str] = {
    ("exact", "yesno"): "yesno",
    ("exact", "factoid"): "factoid",
    ("exact", "list"): "entity_list",
    **{("ideal", qtype): "ideal" for qtype in QUESTION_TYPES},
}
_STYLES: dict[str, AnswerStyle] = {}


def check(qtype: str, kind: str) -> None:
    """Raise ValueError for an unknown answer kind or question type, or an exact answer to a summary question."""
    if kind not in ANSWER_KINDS:
        raise ValueError(f"answer kind must be 'exact' or 'ideal', got {kind!r}")
    if qtype not in QUESTION_TYPES:
        raise ValueError(f"unknown question type {qtype!r}")
    if kind == "exact" and qtype == "summary":
        raise ValueError("summary questions have no exact answer")


def available_styles() -> list[str]:
    """Names of the style modules in ``bioqa.answers``."""
    import bioqa.answers

    return sorted(
        info.name
        for info in pkgutil.iter_modules(bioqa.answers.__path__)
        if importlib.import_module(f"bioqa.answers.{info.name}").__dict__.get("STYLE") is not None
    )


def answer_style(name: str) -> AnswerStyle:
    """The style called ``name``: ``STYLE`` of ``bioqa.answers.<name>``, or of the module a dotted name names."""
    if name not in _STYLES:
        module_name = name if "." in name else f"bioqa.answers.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name is None or not (module_name == err.name or module_name.startswith(f"{err.name}.")):
                raise  # the style module exists but one of its own imports is missing
            raise ConfigError(f"unknown answer style {name!r}; known: {available_styles()}") from None
        style = getattr(module, "STYLE", None)
        if not isinstance(style, AnswerStyle):
            raise ConfigError(f"answer style {name!r}: module {module_name} has no STYLE (an AnswerStyle)")
        _STYLES[name] = style
    return _STYLES[name]


def style_for(qtype: str, kind: str, name: str | None = None) -> AnswerStyle:
    """The style answering ``kind`` answers of ``qtype`` questions: ``name``, else the default one."""
    check(qtype, kind)
    style = answer_style(name or DEFAULT_STYLES[(kind, qtype)])
    if style.kind != kind or qtype not in style.qtypes:
        raise ConfigError(
            f"answer style {name!r} answers {style.kind} answers of {list(style.qtypes)} questions, "
            f"not {kind} answers of {qtype} questions"
        )
    return style


def answer_schema(qtype: str, kind: str, style: str | None = None) -> dict[str, Any] | None:
    """JSON schema of an answer for constrained decoding (``{"answer": "yes"|"no"}``, ``{"entities": [...]}``);
    None for free text (ideal answers)."""
    return style_for(qtype, kind, style).json_schema()


def parse_answer(qtype: str, kind: str, text: str | None, style: str | None = None) -> ParsedAnswer:
    """Parse one model output; ``ok=False`` with a reason when nothing usable is in it (never raises on text)."""
    return style_for(qtype, kind, style).parse(text)
