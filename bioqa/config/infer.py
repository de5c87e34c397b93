"""The schema of ``infer.py``'s composed config (``conf/infer.yaml``), checked before any model is built."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import Field, ValidationInfo, field_validator, model_validator

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
    check_weights,
    collect,
    read_questions,
    unread,
    validated,
)
from bioqa.data import QUESTION_TYPES, Question, select_questions
from bioqa.errors import ConfigError
from bioqa.evaluation.official import VERSIONS
from bioqa.models.base import api_key
from bioqa.parsing import joined, show
from bioqa.prompts import PromptConfig
from bioqa.prompts.config import ANSWER_KINDS, POOLS
from bioqa.prompts.template import check_template
from bioqa.retrieval.encoders import EncoderSpec


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
    shot_pool_fallback: Literal["demo"] | None = Field(
        None, description="demo (a missing few-shot pool falls back to the embedded demo pool), or null"
    )
    closed_book: Flag = Field(False, description="true: answer without snippets (task=phase_b only)")


class Answering(Section):
    max_new_tokens: dict[Literal[ANSWER_KINDS], Count] = Field(
        description="tokens per answer kind, at least 1, e.g. {exact: 192, ideal: 200}"
    )
    temperature: Annotated[float, Field(strict=True, ge=0)] = Field(description="0 or more")
    chunk_size: Count = Field(description="requests per backend call, at least 1")
    seed: Seed | None = Field(description="an integer sampling seed, or null (samples are then never cached)")


class Task(Section):
    name: str
    snippets: Literal["golden", "phase_a"] = Field(description="golden or phase_a")
    phase_a_submission: ExistingFile | None = Field(description="a Phase A submission file, or null")
    kinds: list[Literal[ANSWER_KINDS]] = Field(description=f"answer kinds from {', '.join(ANSWER_KINDS)}")


class Index(OpenSection):
    """A ``_target_`` search index: its keyword arguments are the index class's to check, but a dense index's
    ``encoder`` (``index.encoder``; under retrieval=hybrid ``index.dense.encoder``) is checked here, before any run."""

    corpus_path: ExistingFile | None = Field(None, description="a JSONL corpus file")

    @model_validator(mode="after")
    def _encoder(self) -> Index:
        extra = self.model_extra or {}
        for where, node in (("", extra), ("dense.", extra.get("dense"))):
            if isinstance(node, dict) and "encoder" in node:
                try:
                    EncoderSpec.of(node["encoder"])
                except ConfigError as error:
                    raise ValueError(f"{where}{error}") from None
        return self


class Prompts(Section):
    """Named prompt templates in bioqa's one template language (:mod:`bioqa.prompts.template`: other braces are
    literal); ``FILLS``: the placeholders each one fills, the first of them required. An unknown placeholder is
    refused before any model is called."""

    FILLS: ClassVar[dict[str, tuple[str, ...]]] = {}

    @field_validator("*")
    @classmethod
    def _placeholders(cls, text: str, info: ValidationInfo) -> str:
        fills = cls.FILLS[info.field_name]
        check_template(text, fills, fills[:1])
        return text


class PhaseAPrompts(Prompts):
    FILLS: ClassVar[dict[str, tuple[str, ...]]] = {
        "system": (),
        "query": ("question",),
        "broader": ("question", "failed_queries", "original_query"),
        "extract": ("question", "title", "abstract", "article"),
        "rerank": ("question", "snippets"),
        "query_shot": ("question",),
        "wiki_query": ("question", "wiki_context"),
    }
    system: str
    query: str = Field(description="a template filling {question}")
    broader: str = Field(description="a template filling {question}, {failed_queries}, {original_query}")
    extract: str = Field(description="a template filling {question}, {title}, {abstract}, {article}")
    rerank: str = Field(description="a template filling {question}, {snippets}")
    query_shot: str | None = Field(None, description="style=paper: a query shot's user turn, filling {question}")
    wiki_query: str | None = Field(None, description="query_source=more_like_this: filling {question}, {wiki_context}")


class WikipediaPrompts(Prompts):
    FILLS: ClassVar[dict[str, tuple[str, ...]]] = {
        "system": (),
        "titles": ("question", "k"),
        "summary": ("question", "title", "text"),
    }
    system: str
    titles: str = Field(description="a template filling {question}, {k}")
    summary: str = Field(description="a template filling {question}, {title}, {text}")


class WikipediaPaperPrompts(Prompts):
    FILLS: ClassVar[dict[str, tuple[str, ...]]] = {
        "system": (),
        "titles": ("question",),
        "summary_system": (),
        "summary": ("question", "wikipedia_context"),
    }
    system: str
    titles: str = Field(description="a template filling {question}")
    summary_system: str
    summary: str = Field(description="a template filling {question}, {wikipedia_context}")


Share = Annotated[float, Field(strict=True, ge=0, le=1)]


class ShotQuery(Section):
    """One of Phase A's query-writing shots."""

    question: str
    query: str


Stage = Literal["query", "extract", "rerank"]


class PhaseA(OpenSection):
    """``retrieval.phase_a``: the ``_target_`` (:class:`~bioqa.pipeline.phase_a.PhaseAConfig`) Phase A runs with."""

    strategy: Literal["llm", "bm25"] = Field("llm", description="llm or bm25")
    style: Literal["bioqa", "paper"] = Field("bioqa", description="bioqa or paper (retrieval/phase_a=paper)")
    shots: dict[Stage, NonNegative] = Field(
        default_factory=dict, description="{query: n, extract: n, rerank: n}, each 0 or more"
    )
    shot_files: dict[Stage, str | None] = Field(
        default_factory=dict, description="{query: a pool file, extract: a chat JSONL, rerank: a chat JSONL}"
    )
    query_source: Literal["query_string", "more_like_this"] = Field(
        "query_string", description="query_string or more_like_this"
    )
    mlt_size: Count = Field(100, description="at least 1")
    prompts: PhaseAPrompts | None = None
    fewshot: list[ShotQuery] = Field(default_factory=list, description="query-writing shots: question, query")
    search_k: Count = Field(50, description="documents per query, at least 1")
    max_broader_attempts: NonNegative = Field(2, description="0 or more")
    extract_documents: Count = Field(10, description="at least 1")
    rerank_candidates: Count = Field(30, description="at least 1")
    min_fuzzy_ratio: Share = Field(0.65, description="0 <= min_fuzzy_ratio <= 1")
    max_documents: Count = Field(10, description="at least 1")
    max_snippets: Count = Field(10, description="at least 1")
    baseline_documents: Count = Field(10, description="at least 1")
    doc_prior_weight: Annotated[float, Field(strict=True, ge=0)] = Field(0.5, description="0 or more")
    embedding_model: str | None = Field(None, description="a sentence-transformers model directory, or null")
    query_max_tokens: Count = Field(96, description="at least 1")
    extract_max_tokens: Count = Field(384, description="at least 1")
    rerank_max_tokens: Count = Field(96, description="at least 1")
    oracle_stages: list[Literal["query", "extract", "rerank"]] = Field(
        default_factory=list, description="stages answered from the golden file: query, extract, rerank"
    )
    show_progress: Flag = True

    @model_validator(mode="after")
    def _llm_settings(self) -> PhaseA:
        if self.strategy == "llm" and self.prompts is None:
            raise ValueError("strategy=llm needs retrieval.phase_a.prompts")
        if self.oracle_stages and self.strategy != "llm":
            raise ValueError("oracle_stages replace the model's stages: they need retrieval.phase_a.strategy=llm")
        return self


class Wikipedia(OpenSection):
    """``retrieval.wikipedia``: the ``_target_`` (:class:`~bioqa.retrieval.wikipedia.WikipediaContext`) that adds
    Wikipedia introductions to the prompts."""

    max_articles: NonNegative = Field(0, description="articles per question, 0 (off) or more")
    prompts: WikipediaPrompts | None = None
    max_chars: Count = Field(1500, description="at least 1")
    summarise: Flag = False
    language: str = "en"
    user_agent: str | None = None
    timeout_s: Annotated[float, Field(strict=True, gt=0)] = Field(10.0, description="above 0")
    max_retries: NonNegative = Field(1, description="0 or more")
    api_url: Annotated[str, Field(pattern=r"^https?://")] = Field(
        "https://{language}.wikipedia.org/w/api.php", description="an http:// or https:// MediaWiki API URL"
    )
    titles_max_tokens: Count = Field(128, description="at least 1")
    summary_max_tokens: Count = Field(192, description="at least 1")
    style: Literal["bioqa", "paper"] = Field("bioqa", description="bioqa or paper")
    paper_max_tokens: Count = Field(4096, description="at least 1")
    paper_prompts: WikipediaPaperPrompts | None = None
    cache_path: str | None = Field(None, description="an SQLite file, or null")
    offline: Flag = False

    @model_validator(mode="after")
    def _usable(self) -> Wikipedia:
        if self.offline and self.cache_path is None:
            raise ValueError("offline=true needs retrieval.wikipedia.cache_path (the cache it reads)")
        if self.max_articles and self.prompts is None and self.style == "bioqa":
            raise ValueError(f"max_articles={self.max_articles} needs retrieval.wikipedia.prompts")
        if self.max_articles and self.paper_prompts is None and self.style == "paper":
            raise ValueError(
                f"max_articles={self.max_articles} with style=paper needs retrieval.wikipedia.paper_prompts"
            )
        return self


class Retrieval(Section):
    index: Index | None = None
    phase_a: PhaseA | None = None
    phase_a_models: dict[Stage, Model | None] | None = None  # a model per Phase A stage (null: the run's)
    wikipedia: Wikipedia | None = None


class Errors(Section):
    max_fraction: Annotated[float, Field(strict=True, ge=0, le=1)] = Field(
        0.0, description="the share of failed requests a run may have, 0 <= max_fraction <= 1"
    )


class Ensemble(Section):
    """``task=ensemble``'s settings (how :mod:`bioqa.pipeline.ensemble` combines finished runs)."""

    runs: Annotated[list[str], Field(min_length=2)] = Field(
        description="two or more run directories (each with submission.json)", examples=["[RUN_A,RUN_B]"]
    )
    rrf_k: NonNegative = Field(60, description="the RRF constant, 0 or more")
    list_min_votes: Annotated[float, Field(strict=True, gt=0, le=1)] = Field(
        0.5, description="share of answering members naming a list entity, 0 < list_min_votes <= 1"
    )
    ideal: Literal["member", "condense"] = Field("member", description="member or condense")
    ideal_member: NonNegative = Field(0, description="an index into ensemble.runs")
    condense_max_tokens: Count = Field(300, description="at least 1")

    @model_validator(mode="after")
    def _members(self) -> Ensemble:
        if len(set(map(os.path.realpath, self.runs))) != len(self.runs):
            raise ValueError("runs: the same run directory is listed twice")
        if self.ideal_member >= len(self.runs):
            raise ValueError(f"ideal_member={self.ideal_member}: must index ensemble.runs (0..{len(self.runs) - 1})")
        return self


class Evaluation(Section):
    enabled: Flag
    version: Literal[VERSIONS] = Field(description=f"the official evaluator's -e: {', '.join(map(str, VERSIONS))}")
    bootstrap: NonNegative = Field(description="0 or more resamples for the 95% CIs; 0: no CIs")
    seed: Seed
    rouge: Flag


class Cache(Section):
    enabled: Flag
    path: str | None = Field(description="an SQLite file (created when missing)")

    @model_validator(mode="after")
    def _creatable(self) -> Cache:
        if self.enabled:
            check_cache_path(self.path)
        return self


class InferConfig(Root):
    model: Model
    data: Data
    answering: Answering
    task: Task
    retrieval: Retrieval
    evaluation: Evaluation
    cache: Cache
    errors: Errors = Errors()
    seed: Seed
    prompt: PromptSection | None = unread("parsed whole by check_prompt (InferInputs.prompt)")
    paths: Paths | None = unread("directories (resolved in the run)")
    logger: Loggers | None = unread("experiment loggers")
    ensemble: Ensemble | None = None

    @model_validator(mode="after")
    def _agree(self) -> InferConfig:
        """The rules that join sections: a token limit per answer kind, an index for Phase A, ensemble's runs."""
        task, found = self.task, []
        missing = [kind for kind in task.kinds if kind not in self.answering.max_new_tokens]
        if missing:
            found.append(f"answering.max_new_tokens has no entry for {missing} (task.kinds={show(task.kinds)})")
        no_index = self.retrieval.index is None or self.retrieval.phase_a is None
        if task.snippets == "phase_a" and task.phase_a_submission is None and no_index:
            found.append(
                f"task={task.name} needs a search index for Phase A: choose retrieval=tantivy|bm25|elasticsearch, "
                "or reuse a Phase A submission with task.phase_a_submission=PATH"
            )
        if task.name == "ensemble" and self.ensemble is None:
            found.append("ensemble.runs is missing (???): pass ensemble.runs=...")  # as a ??? value is reported
        if found:
            raise ValueError(joined(found))
        return self


@dataclass(frozen=True)
class InferInputs:
    """A checked infer config and what it names, read: the prompt settings and the selected questions."""

    config: InferConfig
    prompt: PromptConfig
    questions: list[Question]


def validate_infer_config(cfg: DictConfig) -> InferInputs:
    """Parse ``infer.py``'s config and read its questions (and Phase A submission) before any model is built or
    called; every problem of the config in one :class:`~bioqa.errors.ConfigError` line (a file: one
    :class:`~bioqa.errors.DataFileError` line)."""
    checked, prompt, *_ = collect(
        lambda: validated(InferConfig, cfg),
        lambda: check_prompt(cfg.prompt, _shot_pool(cfg)),
        lambda: check_credentials(cfg),
        lambda: check_weights("model.backend.model_path", cfg) if _builds_model(cfg) else None,
    )
    task, data = checked.task, checked.data
    questions = select_questions(read_questions("data.golden", data.golden), data.limit, data.types)
    if not questions:
        raise ConfigError(f"data.types={show(data.types)}: no question of these types in {data.golden}")
    if task.phase_a_submission is not None:
        read_questions("task.phase_a_submission", task.phase_a_submission)
    phase_a = checked.retrieval.phase_a
    if task.snippets == "phase_a" and task.phase_a_submission is None and phase_a and phase_a.style == "paper":
        instantiate(cfg.retrieval.phase_a)  # reads its shot files now: a bad one is one line before any model
    return InferInputs(checked, prompt, questions)


def check_credentials(cfg: DictConfig) -> None:
    """The API key a remote model reads (``model.backend.api_key_env``) is set, when the run builds the model (not
    for an ensemble that writes no answer): a missing key is one line naming the variable, before anything runs."""
    variable = OmegaConf.select(cfg, "model.backend.api_key_env", default=None)
    if isinstance(variable, str) and variable and _builds_model(cfg):
        api_key(variable, OmegaConf.select(cfg, "model.backend.model", default=None) or cfg.model.name)


def _builds_model(cfg: DictConfig) -> bool:
    """Whether the run builds ``model.backend`` (an ensemble does only to condense ideal answers)."""
    return cfg.task.name != "ensemble" or OmegaConf.select(cfg, "ensemble.ideal", default=None) == "condense"


def _shot_pool(cfg: DictConfig) -> str | None:
    """``data.shot_pool`` when it is a pool name (a bad or unresolvable one is reported by the schema)."""
    try:
        pool = cfg.data.get("shot_pool")
    except OmegaConfBaseException:
        return None
    return pool if pool in POOLS else None


def check_cache_path(path: str | None) -> None:
    """The completion cache can be created at ``path`` (``cache.path``; named relative to ``cache``): not a directory,
    nor under a file."""
    if path is None:
        raise ValueError("path=null: name an SQLite file, or turn the cache off with cache.enabled=false")
    if Path(path).is_dir():
        raise ValueError(f"path={path}: is a directory (allowed: an SQLite file path)")
    blocking = next((p for p in Path(path).parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise ValueError(f"path={path}: {blocking} is not a directory")
