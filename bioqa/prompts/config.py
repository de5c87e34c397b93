"""Typed prompt settings: templates per answer kind and question type, shot source and selection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from bioqa.answers import ANSWER_KINDS, DEFAULT_STYLES, AnswerKind, AnswerStyle, style_for
from bioqa.data import QUESTION_TYPES, QuestionType
from bioqa.parsing import parse
from bioqa.prompts.template import check_template

#: Question types that have an exact answer (summary questions have only an ideal one).
EXACT_TYPES: tuple[QuestionType, ...] = ("yesno", "factoid", "list")
SELECTIONS = ("first_n", "knn")
POOLS = ("fewshot", "golden", "demo")
SNIPPET_FORMATS = ("paper", "numbered")


#: What each part of an answer template may hold (:mod:`bioqa.prompts.template`): ``user`` fills ``{snippets}`` and
#: ``{question}`` (required), ``answer`` fills ``{answer}`` (required); the system text fills nothing.
PLACEHOLDERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "system": ((), ()),
    "user": (("snippets", "question"), ("question",)),
    "answer": (("answer",), ("answer",)),
}


def check_part(part: str, text: str) -> str:
    """``text`` as the ``part`` (system, user, answer) of an answer template: its placeholders checked."""
    allowed, required = PLACEHOLDERS[part]
    check_template(text, allowed, required)
    return text


@dataclass(frozen=True)
class Template:
    """One prompt: system text (empty: no system message), user template, the shot answer's rendering, and
    the answer style the prompt asks for.

    ``user`` holds the placeholders ``{snippets}`` and ``{question}``; ``answer`` holds ``{answer}`` (the
    yes/no word, the JSON array of entity strings, or the ideal answer text). Other braces are literal.
    ``style``: a :mod:`bioqa.answers` style name (None: the default style of the answer kind and question type).
    """

    system: str
    user: str
    answer: str = "{answer}"
    style: str | None = None

    def __post_init__(self) -> None:
        for part in PLACEHOLDERS:
            check_part(part, getattr(self, part))


class TemplateSettings(BaseModel):
    """The schema of one answer template (``prompt.templates.<kind>.<type>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str
    user: str
    answer: str = "{answer}"
    style: str | None = None

    @field_validator("system", "user", "answer")
    @classmethod
    def _placeholders(cls, text: str, info: ValidationInfo) -> str:
        return check_part(info.field_name, text)


class PromptSettings(BaseModel):
    """The schema of the prompt settings (``conf/prompt``): :meth:`PromptConfig.from_dict` parses with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    templates: dict[Literal[ANSWER_KINDS], dict[Literal[QUESTION_TYPES], TemplateSettings]] = Field(
        description="answer kind -> question type -> template (conf/prompt/templates)"
    )
    n_shots: Annotated[int, Field(strict=True, ge=0)] = Field(0, description="shots per prompt, 0 or more")
    selection: Literal[SELECTIONS] = Field("first_n", description=f"one of {', '.join(SELECTIONS)}")
    pool: Literal[POOLS] = Field("fewshot", description=f"one of {', '.join(POOLS)}")
    pool_path: str | None = None
    snippet_format: Literal[SNIPPET_FORMATS] = Field("paper", description=f"one of {', '.join(SNIPPET_FORMATS)}")
    structured: Annotated[bool, Field(strict=True)] = False

    @model_validator(mode="after")
    def _complete(self) -> PromptSettings:
        """A template for every exact type and, under ``ideal``, every type; each style answers its template."""
        for kind, types in (("exact", EXACT_TYPES), ("ideal", QUESTION_TYPES)):
            missing = [t for t in types if t not in self.templates.get(kind, {})]
            if missing:
                raise ValueError(f"templates.{kind} lacks templates for {missing}")
        for kind, per_type in self.templates.items():
            for qtype, template in per_type.items():
                try:
                    style_for(qtype, kind, template.style)
                except ValueError as err:
                    raise ValueError(f"templates.{kind}.{qtype}.style: {err}") from None
        return self


@dataclass(frozen=True)
class PromptConfig:
    """Plain, typed prompt settings, parsed by :class:`PromptSettings` (``PromptConfig.from_dict``).

    ``templates[kind][qtype]``: a :class:`Template` for every exact type (yesno, factoid, list) and,
    under ``ideal``, for all four types. ``structured``: exact answers of shots and training targets are
    rendered as the JSON of the template's answer style (:mod:`bioqa.answers`), and prompts carry that
    style's schema for constrained decoding.
    """

    templates: dict[str, dict[str, Template]]
    n_shots: int = 0
    selection: Literal["first_n", "knn"] = "first_n"
    pool: Literal["fewshot", "golden", "demo"] = "fewshot"
    pool_path: str | None = None
    snippet_format: Literal["paper", "numbered"] = "paper"
    structured: bool = False

    def template(self, kind: AnswerKind, qtype: QuestionType) -> Template:
        """The template for this answer kind and question type (summary questions have no exact one)."""
        if kind not in ANSWER_KINDS:
            raise ValueError(f"answer kind must be one of {ANSWER_KINDS}, got {kind!r}")
        if kind == "exact" and qtype not in EXACT_TYPES:
            raise ValueError(f"{qtype} questions have no exact answer")
        return self.templates[kind][qtype]

    def style_name(self, kind: AnswerKind, qtype: QuestionType) -> str:
        """The name of the answer style this config's template asks for (the default one when it names none)."""
        return self.template(kind, qtype).style or DEFAULT_STYLES[(kind, qtype)]

    def style(self, kind: AnswerKind, qtype: QuestionType) -> AnswerStyle:
        """The answer style this config's template asks for (the default style when it names none)."""
        return style_for(qtype, kind, self.style_name(kind, qtype))

    @classmethod
    def from_settings(cls, settings: PromptSettings) -> PromptConfig:
        """From parsed settings."""
        templates = {
            kind: {qtype: Template(**t.model_dump()) for qtype, t in per_type.items()}
            for kind, per_type in settings.templates.items()
        }
        return cls(**{**settings.model_dump(exclude={"templates"}), "templates": templates})

    @classmethod
    def from_dict(cls, values: dict[str, Any], prefix: str = "prompt.") -> PromptConfig:
        """From a plain dict, e.g. ``OmegaConf.to_container(cfg.prompt, resolve=True)``; every problem in one
        :class:`~bioqa.errors.ConfigError` (its keys under ``prefix``)."""
        return cls.from_settings(parse(PromptSettings, values, prefix))
