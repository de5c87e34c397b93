"""A scripted backend for pipeline tests: replies chosen by a function, every request recorded (per call in
``calls``), and an optional crash after a number of completions (a backend process dying mid-batch)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from bioqa.models import Backend, ChatRequest, Completion

Reply = Callable[[ChatRequest], Completion]


def yes(request: ChatRequest) -> Completion:
    return Completion(text='{"answer": "yes"}', prompt_tokens=10, completion_tokens=3)


class ScriptedBackend(Backend):
    """``reply(request) -> Completion``; ``crash_after``: raise after yielding that many completions in total;
    ``reverse``: yield each batch's completions last-to-first (backends may answer in any order)."""

    kind = "scripted"

    def __init__(self, reply: Reply = yes, crash_after: int | None = None, reverse: bool = False, name: str = "s"):
        self.reply, self.crash_after, self.reverse, self.name = reply, crash_after, reverse, name
        self.requests: list[ChatRequest] = []
        self.calls: list[list[ChatRequest]] = []

    @classmethod
    def from_text(cls, reply: Callable[[str], str | None], **kwargs) -> ScriptedBackend:
        """Replies from the last user message's text; ``None`` is a failed request."""

        def complete(request: ChatRequest) -> Completion:
            text = reply(request.messages[-1]["content"])
            return Completion(text="", error="scripted failure") if text is None else Completion(text=text)

        return cls(complete, **kwargs)

    @property
    def model_id(self) -> str:
        return f"scripted:{self.name}"

    @property
    def context_window(self) -> int:
        return 8192

    def count_tokens(self, messages) -> int:
        return sum(len(m["content"]) for m in messages) // 4

    def stream(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        self.calls.append(list(requests))
        order = range(len(requests) - 1, -1, -1) if self.reverse else range(len(requests))
        for index in order:
            if self.crash_after is not None and len(self.requests) >= self.crash_after:
                raise RuntimeError("backend died")
            self.requests.append(requests[index])
            yield index, self.reply(requests[index])
