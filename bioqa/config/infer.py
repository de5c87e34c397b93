"""The schema of ``infer.py``'s composed config (``conf/infer.yaml``), checked before any model is built."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from omegaconf import DictConfig
from pydantic import Field

from bioqa.config.common import (
    AdapterDir,
    Count,
    ExistingFile,
    Flag,
    Loggers,
    NonNegative,
    OpenSection,
    Paths,
    PromptSection,
    Root,
    Section,
    Seed,
    check_prompt,
    read_questions,
    show,
    unread,
    validated,
)
from bioqa.data import QUESTION_TYPES
from bioqa.errors import ConfigError
from bioqa.evaluation.official import VERSIONS
from bioqa.prompts.config import ANSWER_KINDS, POOLS


class Model(Section):
    name: str
    adapter: AdapterDir | None = Field(None, description="a directory written by train.py (<run>/adapter), or null")
    backend: OpenSection | None = unread("the backend's _target_ and its keyword arguments (checked when built)")
    train: OpenSection | None = unread("train.py's recipe (infer.py does not read it)")


class Data(Section):
    golden: ExistingFile = Field(description="a BioASQ JSON file with the questions")
    limit: Count | None = Field(description="a positive number of questions, or null for all")
    types: Annotated[list[Literal[QUESTION_TYPES]], Field(min_length=1)] | None = Field(
        description=f"a list of question types from {', '.join(QUESTION_TYPES)}, e.g. [yesno,factoid]; null for all"
    )
    shot_pool: Literal[POOLS] | None = Field(description=f"one of {', '.join(POOLS)}, or null for prompt.pool")
    shot_pool_fallback: Any = unread("null or demo (checked where it is used, bioqa.pipeline.app)")
    closed_book: Flag = Field(False, description="true: answer without snippets (task=phase_b only)")


class Answering(Section):
    max_new_tokens: dict[Literal[ANSWER_KINDS], Count] = Field(
        description="tokens per answer kind, at least 1, e.g. {exact: 192, ideal: 200}"
    )
    temperature: Annotated[float, Field(ge=0)] = Field(description="0 or more")
    chunk_size: Count = Field(description="requests per backend call, at least 1")
    seed: int | None = Field(description="an integer sampling seed, or null (samples are then never cached)")


class Task(Section):
    name: str
    snippets: Literal["golden", "phase_a"] = Field(description="golden or phase_a")
    phase_a_submission: ExistingFile | None = Field(description="a Phase A submission file, or null")
    kinds: list[Literal[ANSWER_KINDS]] = Field(description=f"answer kinds from {', '.join(ANSWER_KINDS)}")


class Index(OpenSection):
    """A ``_target_`` search index: its keyword arguments are the index class's to check."""

    corpus_path: ExistingFile | None = Field(None, description="a JSONL corpus file")


class Retrieval(Section):
    index: Index | None = None
    phase_a: dict[str, Any] | None = None  # a _target_ (PhaseAConfig) and its keyword arguments
    wikipedia: OpenSection | None = unread("a _target_ (WikipediaContext) and its keyword arguments")


class Errors(Section):
    max_fraction: Any = None  # checked where it is used (bioqa.pipeline.accounting.check_max_fraction)


class Ensemble(Section):
    """``task=ensemble``'s settings (read and checked by :mod:`bioqa.pipeline.ensemble`)."""

    runs: Any = None
    rrf_k: Any = None
    list_min_votes: Any = None
    ideal: Any = None
    ideal_member: Any = None
    condense_max_tokens: Any = None


class Evaluation(Section):
    enabled: Flag
    version: Literal[VERSIONS] = Field(description=f"the official evaluator's -e: {', '.join(map(str, VERSIONS))}")
    bootstrap: NonNegative = Field(description="0 or more resamples for the 95% CIs; 0: no CIs")
    seed: Seed
    rouge: Flag


class Cache(Section):
    enabled: Flag
    path: str | None = Field(description="an SQLite file (created when missing)")


class InferConfig(Root):
    model: Model
    data: Data
    answering: Answering
    task: Task
    retrieval: Retrieval
    evaluation: Evaluation
    cache: Cache
    errors: Errors | None = unread("the share of failed requests a run may have")
    seed: Seed
    prompt: PromptSection | None = unread("checked whole by check_prompt")
    paths: Paths | None = unread("directories (resolved in the run)")
    logger: Loggers | None = unread("experiment loggers")
    ensemble: Ensemble | None = unread("task=ensemble's settings")


def validate_infer_config(cfg: DictConfig) -> InferConfig:
    """Check ``infer.py``'s config and read its questions (and Phase A submission) before any model is built or
    called; raises :class:`~bioqa.errors.ConfigError` / :class:`~bioqa.errors.DataFileError` (one line)."""
    checked = validated(InferConfig, cfg)
    check_prompt(cfg.prompt, checked.data.shot_pool)
    task = checked.task
    missing = [kind for kind in task.kinds if kind not in checked.answering.max_new_tokens]
    if missing:
        raise ConfigError(f"answering.max_new_tokens has no entry for {missing} (task.kinds={show(task.kinds)})")
    no_index = checked.retrieval.index is None or checked.retrieval.phase_a is None
    if task.snippets == "phase_a" and task.phase_a_submission is None and no_index:
        raise ConfigError(
            f"task={task.name} needs a search index for Phase A: choose retrieval=tantivy|bm25|elasticsearch, "
            "or reuse a Phase A submission with task.phase_a_submission=PATH"
        )
    if checked.cache.enabled:
        check_cache_path(checked.cache.path)
    questions = read_questions("data.golden", checked.data.golden)
    if checked.data.types and not any(q.type in checked.data.types for q in questions):
        raise ConfigError(f"data.types={show(checked.data.types)}: no question of these types in {checked.data.golden}")
    if task.phase_a_submission is not None:
        read_questions("task.phase_a_submission", task.phase_a_submission)
    return checked


def check_cache_path(path: str | None) -> None:
    """The completion cache can be created at ``path`` (``cache.path``): not a directory, nor under a file."""
    if path is None:
        raise ConfigError("cache.path=null: name an SQLite file, or turn the cache off with cache.enabled=false")
    if Path(path).is_dir():
        raise ConfigError(f"cache.path={path}: is a directory (allowed: an SQLite file path)")
    blocking = next((p for p in Path(path).parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise ConfigError(f"cache.path={path}: {blocking} is not a directory")
