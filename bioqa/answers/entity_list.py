"""List answers: ``{"entities": [...]}``, every entity the model names (parsing does not cap them)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from bioqa.answers.entities import EntitiesStyle
from bioqa.answers.factoid import Entity

#: Bounds that make every schema-constrained answer finish: at most this many items of at most
#: MAX_ENTITY_CHARS characters (BioASQ 7B–11B: 1 golden list of 1,150 has more than 20 items).
MAX_LIST_ITEMS = 20


class ListAnswer(BaseModel):
    """Bounded so that constrained decoding closes the JSON within about 20 * (MAX_ENTITY_CHARS + 3) + 20 tokens."""

    model_config = ConfigDict(extra="forbid")

    entities: list[Entity] = Field(max_length=MAX_LIST_ITEMS)


class ListStyle(EntitiesStyle):
    name = "entity_list"
    qtypes = ("list",)
    schema_model: ClassVar[type[BaseModel]] = ListAnswer


STYLE = ListStyle()
