"""A scripted model backend for Phase A tests: fixed replies exercise control flow, not model quality."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from bioqa.models import Backend, ChatRequest, Completion


class ScriptedBackend(Backend):
    """A test double: ``reply(user message) -> text`` (or an error); it records every request."""

    kind = "scripted"

    def __init__(self, reply: Callable[[str], str | None]):
        self.reply, self.calls = reply, []

    @property
    def model_id(self) -> str:
        return "scripted"

    @property
    def context_window(self) -> int:
        return 8192

    def count_tokens(self, messages) -> int:
        return sum(len(m["content"]) for m in messages) // 4

    def stream(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        self.calls.append(list(requests))
        for index, r in enumerate(requests):
            text = self.reply(r.messages[-1]["content"])
            yield index, Completion(text="", error="scripted failure") if text is None else Completion(text=text)
