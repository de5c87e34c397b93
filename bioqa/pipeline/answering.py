"""Phase A+/B answering: prompts → backend → parsed answers, journaled one by one as they arrive."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bioqa.answers import style_for
from bioqa.data import Question, SystemAnswer
from bioqa.models import Backend, ChatRequest, Completion, GenerationParams
from bioqa.models.base import timed
from bioqa.pipeline.journal import PredictionJournal
from bioqa.prompts import EXACT_TYPES, AnswerKind, BuiltPrompt


@dataclass(frozen=True)
class AnsweringConfig:
    """Which answers to produce and how to decode them (``infer.py``: parsed from ``answering``/``task.kinds`` by
    :class:`bioqa.config.infer.InferConfig`)."""

    kinds: tuple[AnswerKind, ...] = ("exact", "ideal")
    max_new_tokens: dict[str, int] = field(default_factory=lambda: {"exact": 96, "ideal": 200})
    temperature: float = 0.0
    chunk_size: int = 16  # requests handed to the backend at once; every answer is journaled as it arrives
    seed: int | None = None  # sampling seed (temperature > 0): seeded samples repeat and are cached, unseeded never


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
            params = GenerationParams(
                max_new_tokens=config.max_new_tokens[kind],
                temperature=config.temperature,
                seed=config.seed if config.temperature > 0 else None,
            )
            request = ChatRequest(messages=tuple(built.messages), params=params, json_schema=built.json_schema)
            info = {"shot_ids": list(built.shot_ids), "n_snippets": built.n_snippets_used, "dropped": built.dropped}
            items.append(_Item(question, kind, request, info, built.answer_style))
    return items


def _record(item: _Item, completion: Completion, model_id: str) -> dict[str, Any]:
    question = item.question
    style = style_for(question.type, item.kind, item.answer_style)
    parsed = style.parse(completion.text) if completion.ok else None
    return {
        "id": question.id,
        "type": question.type,
        "kind": item.kind,
        "model": model_id,
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
        "wall_s": completion.wall_s,
        "cached": completion.cached,
        "original_cost_usd": completion.original_cost_usd,
        "original_latency_s": completion.original_latency_s,
        "original_wall_s": completion.original_wall_s,
        "error": completion.error,
        "error_kind": getattr(completion, "error_kind", None),
        "finish_reason": getattr(completion, "finish_reason", None),
    }


def reusable(record: dict[str, Any] | None, item: _Item, model_id: str) -> bool:
    """Whether a journaled record answers this very request: finished, same prompt hash (messages, decoding,
    schema) and same model. A record of the same question and kind made for another request is recomputed."""
    return (
        record is not None
        and not record.get("error")
        and record.get("prompt_hash") == prompt_hash(item.request)
        and record.get("model", model_id) == model_id
    )


def short_model_name(model_id: str) -> str:
    """A model id for a progress bar: a local file or directory (``/path/pkg:model.gguf``) by its own name, an API or
    hub id (``openai/gpt-4o``) as it is."""
    return Path(model_id.replace(":", "/")).name if Path(model_id.partition(":")[0]).is_absolute() else model_id


def answer_questions(
    questions: Sequence[Question],
    backend: Backend,
    build_prompt: Callable[[Question, AnswerKind], BuiltPrompt],
    journal: PredictionJournal,
    config: AnsweringConfig | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Answer every question; items whose request ``journal`` already answered are skipped (resume).

    Requests go to ``backend.stream`` ``config.chunk_size`` at a time and every record is journaled the moment
    its completion arrives, so a killed or crashed run keeps every answer it received. Returns the latest
    record of each of this call's items (the journal may hold more, e.g. from an earlier run over more questions).
    """
    config = config or AnsweringConfig()
    model_id = backend.model_id
    items = plan_requests(questions, build_prompt, config)
    todo = [item for item in items if not reusable(journal.latest(item.question.id, item.kind), item, model_id)]
    with tqdm(
        total=len(todo), desc=f"answering ({short_model_name(model_id)})", unit="req", disable=not (progress and todo)
    ) as bar:  # no bar for nothing to ask (task=phase_a, a finished run)
        for start in range(0, len(todo), config.chunk_size):
            chunk = todo[start : start + config.chunk_size]
            pending = set(range(len(chunk)))
            for index, completion in timed(backend.stream([item.request for item in chunk])):
                journal.append(_record(chunk[index], completion, model_id))
                pending.discard(index)
                bar.update(1)
            for index in sorted(pending):  # a backend that broke its contract: retried on the next run
                missing = Completion(text="", error="the backend returned no completion for this request", wall_s=0.0)
                journal.append(_record(chunk[index], missing, model_id))
                bar.update(1)
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
