"""Prompts per question type: templates, few-shot pools and selection (first-n, kNN), context fitting."""

from bioqa.answers import ANSWER_KINDS, AnswerKind, entity_strings
from bioqa.prompts.builder import BuiltPrompt, PromptBuilder
from bioqa.prompts.config import EXACT_TYPES, PromptConfig, Template
from bioqa.prompts.fitting import PromptTooLongError, fit_prompt
from bioqa.prompts.render import answer_turn, format_snippets, user_turn
from bioqa.prompts.shots import (
    QuestionEmbedder,
    ShotPool,
    ShotSelector,
    load_pool,
    read_fewshot_pool,
    read_golden_pool,
)

__all__ = [
    "ANSWER_KINDS",
    "EXACT_TYPES",
    "AnswerKind",
    "BuiltPrompt",
    "PromptBuilder",
    "PromptConfig",
    "PromptTooLongError",
    "QuestionEmbedder",
    "ShotPool",
    "ShotSelector",
    "Template",
    "answer_turn",
    "entity_strings",
    "fit_prompt",
    "format_snippets",
    "load_pool",
    "read_fewshot_pool",
    "read_golden_pool",
    "user_turn",
]
