"""Typed prompt settings: templates per answer kind and question type, shot source and selection."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from bioqa.answers import ANSWER_KINDS, DEFAULT_STYLES, AnswerKind, AnswerStyle, style_for
from bioqa.data import QUESTION_TYPES, QuestionType
from bioqa.errors import ConfigError

#: Question types that have an exact answer (summary questions have only an ideal one).
EXACT_TYPES: tuple[QuestionType, ...] = ("yesno", "factoid", "list")
SELECTIONS = ("first_n", "knn")
POOLS = ("fewshot", "golden", "demo")
SNIPPET_FORMATS = ("paper", "numbered")


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
        if "{question}" not in self.user:
            raise ValueError(f"user template has no {{question}} placeholder: {self.user[:80]!r}")
        if "{answer}" not in self.answer:
            raise ValueError(f"answer template has no {{answer}} placeholder: {self.answer!r}")


@dataclass(frozen=True)
class PromptConfig:
    """Plain, typed prompt settings (build from Hydra with ``PromptConfig.from_dict``).

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

    def __post_init__(self) -> None:
        if self.n_shots < 0:
            raise ValueError(f"prompt.n_shots must be >= 0, got {self.n_shots}")
        for key, allowed in (("selection", SELECTIONS), ("pool", POOLS), ("snippet_format", SNIPPET_FORMATS)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"prompt.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        for kind, types in (("exact", EXACT_TYPES), ("ideal", QUESTION_TYPES)):
            missing = [t for t in types if t not in self.templates.get(kind, {})]
            if missing:
                raise ValueError(f"prompt.templates.{kind} lacks templates for {missing}")
        for kind, per_type in self.templates.items():
            for qtype, template in per_type.items():
                try:
                    style_for(qtype, kind, template.style)
                except ValueError as err:
                    raise ConfigError(f"prompt.templates.{kind}.{qtype}.style: {err}") from None

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
    def from_dict(cls, values: dict[str, Any]) -> PromptConfig:
        """From a plain dict, e.g. ``OmegaConf.to_container(cfg.prompt, resolve=True)``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown prompt settings {unknown}; known: {sorted(known)}")
        if "templates" not in values:
            raise ValueError("prompt settings need 'templates' (e.g. defaults: [templates: paper])")
        templates: dict[str, dict[str, Template]] = {}
        for kind, per_type in values["templates"].items():
            if kind not in ANSWER_KINDS:
                raise ValueError(f"prompt.templates: unknown answer kind {kind!r}; expected {ANSWER_KINDS}")
            templates[kind] = {}
            for qtype, spec in per_type.items():
                if qtype not in QUESTION_TYPES:
                    raise ValueError(f"prompt.templates.{kind}: unknown question type {qtype!r}")
                try:
                    templates[kind][qtype] = Template(**spec)
                except (TypeError, ValueError) as err:
                    raise ValueError(f"prompt.templates.{kind}.{qtype}: {err}") from None
        return cls(**{**values, "templates": templates})
