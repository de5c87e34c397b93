"""Parse plain values into a pydantic model, every problem as a ``key=value: what is wrong (what is allowed)``
clause, all of them in one :class:`~bioqa.errors.ConfigError` line. The config schemas (:mod:`bioqa.config`) and the
library's own typed settings (:class:`bioqa.prompts.PromptConfig`) share it, so a rule has one wording."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bioqa.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
#: Longer values are shortened in a message (a prompt template, a long list).
SHOWN_CHARS = 80


def parse(schema: type[M], values: Any, prefix: str = "") -> M:
    """``schema.model_validate(values)``; every problem in one :class:`ConfigError` (keys under ``prefix``)."""
    try:
        return schema.model_validate(values)
    except ValidationError as error:
        raise ConfigError(joined(problems(error, schema, prefix))) from None


def joined(found: Sequence[str]) -> str:
    """Several problems as one line: ``first; second; ...`` (in the order found, each once)."""
    return "; ".join(dict.fromkeys(found))


def problems(error: ValidationError, schema: type[BaseModel], prefix: str = "") -> list[str]:
    """Every problem of a pydantic ``error``, one clause each: ``key=value: message (what is allowed / expected)``;
    a cross-field rule (a model validator) is its own message, naming keys relative to its section."""
    return [_clause(problem, schema, prefix) for problem in error.errors()]


def _clause(problem: Any, schema: type[BaseModel], prefix: str) -> str:
    loc = [part for part in problem["loc"] if part != "[key]"]  # "[key]": pydantic's mark of a bad dict key
    key = prefix + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    message = str(problem["ctx"]["error"]) if problem["type"] == "value_error" else problem["msg"]
    if problem["type"] == "missing":
        return f"{key} is missing"
    if problem["type"] == "extra_forbidden":
        return f"{key}: unknown config key"
    if problem["type"] == "value_error" and isinstance(problem["input"], dict | BaseModel):
        # a model validator's rules: each names its keys relative to the section it checks
        section = f"{key}." if key and not key.endswith(".") else key
        return "; ".join(section + rule for rule in message.split("; "))
    hint = _description(schema, loc)
    label = "expected" if problem["type"] == "value_error" else "allowed"
    return f"{key}={show(problem['input'])}: {message}" + (f" ({label}: {hint})" if hint else "")


def _description(schema: type[BaseModel], loc: Sequence[Any]) -> str | None:
    """The ``description`` of the field at ``loc`` (walking nested sections), if it has one."""
    description, model = None, schema
    for part in loc:
        field = model.model_fields.get(part) if model is not None and isinstance(part, str) else None
        if field is None:  # inside a dict or list field: its description is not this value's
            return description if isinstance(part, int) else None
        description = field.description
        annotation = field.annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return description


def show(value: Any) -> str:
    """A config value as a user would type it on the command line (long values shortened)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        plain = value and value.strip() == value and not any(c in value for c in ", ")
        text = value if plain else repr(value)
        return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(show(v) for v in value) + "]"
    return str(value)
