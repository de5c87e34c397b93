"""The one small interface every model backend implements (lm-evaluation-harness style).

Backends know nothing of BioASQ: they turn chat requests into completions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters; part of the completion-cache key."""

    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to compute.

    ``json_schema``, when given, asks for output that validates against it: local backends constrain
    decoding to it, API backends use their structured/JSON mode.
    """

    messages: tuple[Message, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    json_schema: dict[str, Any] | None = None


@dataclass
class Completion:
    """A backend's answer to one request; ``error`` is set (and ``text`` empty) when it failed."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    error: str | None = None
    cached: bool = False
    #: For a cache hit: what the original call cost (``cost_usd`` is 0 then, since nothing was paid this run).
    original_cost_usd: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Backend(ABC):
    """A chat model. Implementations: ``hf`` (local transformers) and ``litellm`` (APIs and servers)."""

    #: Short backend kind, part of the cache key ("hf", "litellm").
    kind: str = "base"

    @property
    @abstractmethod
    def model_id(self) -> str:
        """Identifies the weights (and adapter) for the cache key and provenance."""

    @property
    @abstractmethod
    def context_window(self) -> int:
        """Maximum prompt + completion tokens."""

    @abstractmethod
    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Prompt tokens these messages take once the chat template is applied."""

    @abstractmethod
    def stream(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        """Yield ``(index into requests, completion)`` for every request as soon as each is available, in any
        order. A failed request yields a Completion with ``error`` set; only programming errors and configuration
        errors raise. The completion cache stores each as it arrives, so a killed run keeps what it paid for."""

    def generate(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Complete every request; the completions come back in the order of ``requests``."""
        completions: list[Completion | None] = [None] * len(requests)
        for index, completion in self.stream(requests):
            completions[index] = completion
        return completions  # type: ignore[return-value]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (threads, GPU memory)."""
