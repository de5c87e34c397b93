"""Phase A+/B answering: prompts → backend → parsed answers, journaled per question as they arrive."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from bioqa.answers import style_for
from bioqa.data import Question, SystemAnswer
from bioqa.models import Backend, ChatRequest, GenerationParams
from bioqa.pipeline.journal import PredictionJournal
from bioqa.prompts import EXACT_TYPES, AnswerKind, BuiltPrompt


@dataclass(frozen=True)
class AnsweringConfig:
    """Which answers to produce and how to decode them."""

    kinds: tuple[AnswerKind, ...] = ("exact", "ideal")
    max_new_tokens: dict[str, int] = field(default_factory=lambda: {"exact": 96, "ideal": 200})
    temperature: float = 0.0
    chunk_size: int = 16  # requests per backend call; each finished chunk is journaled at once

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AnsweringConfig:
        values = dict(values)
        if "kinds" in values:
            values["kinds"] = tuple(values["kinds"])
        return cls(**values)


@dataclass
class _Item:
    question: Question
    kind: AnswerKind
    request: ChatRequest
    prompt_info: dict[str, Any]
    answer_style: str | None = None


def prompt_hash(request: ChatRequest) -> str:
    """Short content hash of a request (messages, decoding, schema): equal prompts, equal hash."""
    canonical = json.dumps(
        [list(request.messages), request.params.__dict__, request.json_schema], sort_keys=True, default=list
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def kinds_for(question: Question, kinds: Iterable[AnswerKind]) -> list[AnswerKind]:
    """Summary questions have only an ideal answer; the others may have both."""
    return [k for k in kinds if k == "ideal" or question.type in EXACT_TYPES]


def plan_requests(
    questions: Sequence[Question],
    build_prompt: Callable[[Question, AnswerKind], BuiltPrompt],
    config: AnsweringConfig,
) -> list[_Item]:
    """One request per (question, answer kind), with its prompt built and fitted to the context; the
    prompt's JSON schema (structured prompts) constrains decoding."""
    items = []
    for question in questions:
        for kind in kinds_for(question, config.kinds):
            built = build_prompt(question, kind)
            params = GenerationParams(max_new_tokens=config.max_new_tokens[kind], temperature=config.temperature)
            request = ChatRequest(messages=tuple(built.messages), params=params, json_schema=built.json_schema)
            info = {"shot_ids": list(built.shot_ids), "n_snippets": built.n_snippets_used, "dropped": built.dropped}
            items.append(_Item(question, kind, request, info, built.answer_style))
    return items


def _record(item: _Item, completion) -> dict[str, Any]:
    question = item.question
    style = style_for(question.type, item.kind, item.answer_style)
    parsed = style.parse(completion.text) if completion.ok else None
    return {
        "id": question.id,
        "type": question.type,
        "kind": item.kind,
        "prompt_hash": prompt_hash(item.request),
        **item.prompt_info,
        "completion": completion.text,
        "parsed": parsed.value if parsed and parsed.ok else None,
        "parse_ok": bool(parsed and parsed.ok),
        "parse_error": parsed.error if parsed else None,
        "parse_method": parsed.method if parsed else None,
        "answer_style": style.name,
        "parse_details": parsed.details if parsed else None,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "cost_usd": completion.cost_usd,
        "latency_s": completion.latency_s,
        "cached": completion.cached,
        "error": completion.error,
    }


def answer_questions(
    questions: Sequence[Question],
    backend: Backend,
    build_prompt: Callable[[Question, AnswerKind], BuiltPrompt],
    journal: PredictionJournal,
    config: AnsweringConfig | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Answer every question; items already finished in ``journal`` are skipped (resume).

    Each chunk's records are journaled as soon as the backend returns them, so a killed run keeps
    everything computed so far. Returns the latest record of each of this call's items (the journal may hold
    more, e.g. from an earlier run over more questions).
    """
    config = config or AnsweringConfig()
    items = plan_requests(questions, build_prompt, config)
    todo = [item for item in items if journal.done(item.question.id, item.kind) is None]
    with tqdm(total=len(todo), desc=f"answering ({backend.model_id})", unit="req", disable=not progress) as bar:
        for start in range(0, len(todo), config.chunk_size):
            chunk = todo[start : start + config.chunk_size]
            for item, completion in zip(chunk, backend.generate([i.request for i in chunk]), strict=True):
                journal.append(_record(item, completion))
            bar.update(len(chunk))
    return [journal.latest(item.question.id, item.kind) for item in items]


def assemble_answers(
    questions: Sequence[Question],
    records: Iterable[dict[str, Any]],
    snippets_by_id: dict[str, SystemAnswer] | None = None,
) -> list[SystemAnswer]:
    """Official submission entries from parsed records; unparsable or failed answers are left out."""
    by_key = {(r["id"], r["kind"]): r for r in records}
    answers = []
    for q in questions:
        exact = by_key.get((q.id, "exact"), {})
        ideal = by_key.get((q.id, "ideal"), {})
        phase_a = (snippets_by_id or {}).get(q.id)
        answers.append(
            SystemAnswer(
                id=q.id,
                type=q.type,
                body=q.body,
                documents=list(phase_a.documents) if phase_a else [],
                snippets=list(phase_a.snippets) if phase_a else [],
                exact_answer=exact.get("parsed") if exact.get("parse_ok") else None,
                ideal_answer=ideal.get("parsed") if ideal.get("parse_ok") else None,
            )
        )
    return answers
