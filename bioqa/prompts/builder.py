"""Chat prompts for one question: system turn, shots as user/assistant pairs, the question with its snippets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bioqa.answers import AnswerKind
from bioqa.data import Question
from bioqa.prompts.config import PromptConfig
from bioqa.prompts.fitting import fit_prompt
from bioqa.prompts.render import answer_turn, user_turn
from bioqa.prompts.shots import QuestionEmbedder, ShotPool, ShotSelector, load_pool

Message = dict[str, str]


@dataclass(frozen=True)
class BuiltPrompt:
    """A prompt ready for a backend, and what went into it.

    ``dropped``: ``{"shots": k, "snippets": m}`` removed to fit the context; ``json_schema``: the schema to
    constrain decoding with when the config is ``structured`` (else None); ``answer_style``: the name of the
    :mod:`bioqa.answers` style that parses the model's reply.
    """

    messages: tuple[Message, ...]
    shot_ids: list[str]
    n_snippets_used: int
    dropped: dict[str, int] = field(default_factory=lambda: {"shots": 0, "snippets": 0})
    json_schema: dict[str, Any] | None = None
    answer_style: str | None = None


class PromptBuilder:
    """Builds the prompts of a prompt config; the same rendering serves inference and training examples.

    ``count_tokens`` and ``context_window`` (both or neither) enable context fitting to
    ``context_window - max_new_tokens``. ``pool`` defaults to the config's pool, loaded on first need.
    """

    def __init__(
        self,
        config: PromptConfig,
        pool: ShotPool | None = None,
        count_tokens: Callable[[Sequence[Message]], int] | None = None,
        context_window: int | None = None,
        max_new_tokens: int = 256,
        embedder: QuestionEmbedder | None = None,
    ):
        if (count_tokens is None) != (context_window is None):
            raise ValueError("context fitting needs both count_tokens and context_window (or neither)")
        if context_window is not None and context_window - max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room in a {context_window}-token context")
        self.config = config
        self.count_tokens, self.context_window, self.max_new_tokens = count_tokens, context_window, max_new_tokens
        self._pool, self._embedder = pool, embedder
        self._selector: ShotSelector | None = None

    @property
    def selector(self) -> ShotSelector:
        if self._selector is None:
            pool = self._pool if self._pool is not None else load_pool(self.config.pool, self.config.pool_path)
            self._selector = ShotSelector(pool, self.config.selection, self._embedder)
        return self._selector

    def json_schema(self, question: Question, kind: AnswerKind) -> dict[str, Any] | None:
        """The answer schema for constrained decoding, or None (free text, or config not ``structured``)."""
        return self.config.style(kind, question.type).json_schema() if self.config.structured else None

    def target(self, question: Question, kind: AnswerKind) -> str:
        """The golden answer as the assistant turn, rendered exactly as a shot's answer."""
        template = self.config.template(kind, question.type)
        return answer_turn(question, kind, template, self.config.structured)

    def build(self, question: Question, kind: AnswerKind) -> BuiltPrompt:
        """The prompt for ``question``'s ``kind`` answer, fitted to the context when fitting is enabled."""
        template = self.config.template(kind, question.type)
        shots = self.selector.select(question, kind, self.config.n_shots) if self.config.n_shots else []
        shot_turns = [
            (
                {"role": "user", "content": user_turn(template, shot, shot.snippets, self.config.snippet_format)},
                {"role": "assistant", "content": answer_turn(shot, kind, template, self.config.structured)},
            )
            for shot in shots
        ]
        system = [{"role": "system", "content": template.system}] if template.system else []

        def render(n_shots: int, n_snippets: int) -> tuple[Message, ...]:
            turns = [turn for pair in shot_turns[:n_shots] for turn in pair]
            asked = user_turn(template, question, question.snippets[:n_snippets], self.config.snippet_format)
            return (*system, *turns, {"role": "user", "content": asked})

        kept_shots, kept_snippets = len(shots), len(question.snippets)
        if self.count_tokens is not None:
            kept_shots, kept_snippets = fit_prompt(
                render,
                kept_shots,
                kept_snippets,
                self.count_tokens,
                self.context_window - self.max_new_tokens,
                name=f"question {question.id} ({kind} answer)",
            )
        return BuiltPrompt(
            messages=render(kept_shots, kept_snippets),
            shot_ids=[shot.id for shot in shots[:kept_shots]],
            n_snippets_used=kept_snippets,
            dropped={"shots": len(shots) - kept_shots, "snippets": len(question.snippets) - kept_snippets},
            json_schema=self.json_schema(question, kind),
            answer_style=self.config.style_name(kind, question.type),
        )

    def training_example(self, question: Question, kind: AnswerKind) -> list[Message]:
        """Prompt messages plus the golden answer as the final assistant turn (the only turn to train on).

        With fitting enabled, ``max_new_tokens`` is the room kept for that answer.
        """
        target = self.target(question, kind)
        return [*self.build(question, kind).messages, {"role": "assistant", "content": target}]
