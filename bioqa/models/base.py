"""The one small interface every model backend implements (lm-evaluation-harness style).

Backends know nothing of BioASQ: they turn chat requests into completions.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from bioqa.errors import MissingCredentials

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}

#: Why a backend could not give a usable completion (``Completion.error_kind``):
#: - ``malformed``: the reply could not be read as a completion (no choices, no message, not JSON);
#: - ``empty``: the reply's content was null or empty;
#: - ``truncated``: a structured (``json_schema``) request stopped at ``max_new_tokens``: its JSON cannot be valid;
#: - ``rate_limit``, ``timeout``, ``connection``, ``server`` (5xx): transient, retried before giving up;
#: - ``bad_request`` (4xx other than auth/rate limit), ``context_window`` (prompt too long),
#:   ``content_filter`` (refused by the provider's policy), ``out_of_memory`` (local backends);
#: - ``other``: anything else the backend caught (its message says what).
#: Rejected credentials are no kind: they raise ``bioqa.errors.BackendAuthError`` and stop the run.
ErrorKind = Literal[
    "malformed",
    "empty",
    "truncated",
    "rate_limit",
    "timeout",
    "connection",
    "server",
    "bad_request",
    "context_window",
    "content_filter",
    "out_of_memory",
    "other",
]
ERROR_KINDS: frozenset[str] = frozenset(get_args(ErrorKind))

#: At most this many characters of a bad reply are kept in ``Completion.raw`` (for the record, not for parsing).
RAW_LIMIT = 2000


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters; part of the completion-cache key.

    ``seed`` makes sampling (``temperature > 0``) reproducible where the backend supports it; a sampled completion
    is cached only when it is seeded (an unseeded sample must be drawn again, never served from the cache).
    To draw several samples of one prompt, give each its own seed."""

    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @property
    def deterministic(self) -> bool:
        """Whether a repeat of this request may be answered with the same completion (greedy, or seeded)."""
        return self.temperature == 0 or self.seed is not None


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
    """A backend's answer to one request: a usable text (``ok``), or a typed failure.

    - ``error``: one line saying what went wrong (``None`` when ``ok``); ``text`` is empty then.
    - ``error_kind``: an :data:`ErrorKind` (set exactly when ``error`` is; ``"other"`` if a caller gave none).
    - ``finish_reason``: why generation stopped, as the backend reported it: ``"stop"`` (end of turn or a stop
      string), ``"length"`` (``max_new_tokens`` reached), ``"content_filter"``, ...; ``None`` when unknown or when
      no reply came. A free-text completion with ``finish_reason == "length"`` is ``ok`` but cut short
      (:attr:`truncated`): callers flag it. A structured request cut short is an error of kind ``"truncated"``.
    - ``raw``: for a failure with a reply (malformed, empty, truncated, HTTP error body), the first
      :data:`RAW_LIMIT` characters of that reply, for the record.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    error: str | None = None
    cached: bool = False
    #: This completion's share of the wall time of the call that produced it (see :func:`timed`): the shares of
    #: one call add up to its wall time; ``None`` until stamped.
    wall_s: float | None = None
    #: For a cache hit: what the original call cost (``cost_usd`` is 0 then, since nothing was paid this run), how
    #: long it took and its wall-time share (``None`` for cache rows written before shares were kept).
    original_cost_usd: float | None = None
    original_latency_s: float | None = None
    original_wall_s: float | None = None
    error_kind: ErrorKind | None = None
    finish_reason: str | None = None
    raw: str | None = None

    def __post_init__(self) -> None:
        if self.error is not None and self.error_kind is None:
            self.error_kind = "other"
        if self.error_kind is not None and (self.error is None or self.error_kind not in ERROR_KINDS):
            raise ValueError(f"error_kind {self.error_kind!r} needs an error message and one of {sorted(ERROR_KINDS)}")
        if self.raw is not None and len(self.raw) > RAW_LIMIT:
            self.raw = self.raw[:RAW_LIMIT]

    @classmethod
    def failure(cls, kind: ErrorKind, error: str, raw: str | None = None, **fields: Any) -> Completion:
        """A failed completion: empty text, ``error_kind`` = ``kind``, ``raw`` cut to :data:`RAW_LIMIT`."""
        return cls(text="", error=error, error_kind=kind, raw=raw, **fields)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def truncated(self) -> bool:
        """A usable text that was cut at ``max_new_tokens`` (free text only; structured ones are errors)."""
        return self.ok and self.finish_reason == "length"


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
        order. A failed request yields a Completion with ``error`` and ``error_kind`` set (never an exception);
        only programming errors, configuration errors and rejected credentials (``BackendAuthError``) raise.
        The completion cache stores each success as it arrives, so a killed run keeps what it paid for."""

    def generate(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Complete every request; the completions come back in the order of ``requests``."""
        completions: list[Completion | None] = [None] * len(requests)
        for index, completion in self.stream(requests):
            completions[index] = completion
        return completions  # type: ignore[return-value]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (threads, GPU memory)."""


def timed(stream: Iterator[tuple[int, Completion]]) -> Iterator[tuple[int, Completion]]:
    """``stream`` with each completion's ``wall_s`` stamped (unless already set): the wall time since the previous
    completion arrived, or since the stream started, so the shares of one call add up to its wall time."""
    last = time.perf_counter()
    for index, completion in stream:
        now = time.perf_counter()
        if completion.wall_s is None:
            completion.wall_s = now - last
        last = now
        yield index, completion


def api_key(variable: str, model: str) -> str:
    """The API key for ``model`` in the environment variable ``variable``; raises :class:`MissingCredentials`
    (one line naming the variable) when it is unset or empty."""
    key = os.environ.get(variable)
    if not key:
        raise MissingCredentials(
            f"environment variable {variable} (the API key for {model}) is not set: export {variable}=<your key>, "
            "or answer with a local model (e.g. model=smollm2)"
        )
    return key
