"""Factoid answers: ``{"entities": [...]}``, at most 5 candidates ordered by confidence (BioASQ's limit)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bioqa.answers.entities import MAX_ENTITY_CHARS, EntitiesStyle
from bioqa.data import MAX_FACTOID_CANDIDATES

Entity = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ENTITY_CHARS)]


class FactoidAnswer(BaseModel):
    """Bounded so that constrained decoding closes the JSON within about 5 * (MAX_ENTITY_CHARS + 3) + 20 tokens."""

    model_config = ConfigDict(extra="forbid")

    entities: list[Entity] = Field(max_length=MAX_FACTOID_CANDIDATES)


class FactoidStyle(EntitiesStyle):
    name = "factoid"
    qtypes = ("factoid",)
    schema_model: ClassVar[type[BaseModel]] = FactoidAnswer
    limit: ClassVar[int | None] = MAX_FACTOID_CANDIDATES


STYLE = FactoidStyle()
