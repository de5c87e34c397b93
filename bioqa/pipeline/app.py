"""``infer.py``'s glue: build the run's objects from the composed Hydra config, then call ``run_inference``."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from bioqa.data import Question, Snippet, SystemAnswer, load_questions
from bioqa.models import Backend
from bioqa.models.registry import build_backend
from bioqa.pipeline.answering import AnsweringConfig
from bioqa.pipeline.inference import EvaluationOptions, InferenceResult, run_inference
from bioqa.prompts import PromptBuilder, PromptConfig
from bioqa.runs import write_json, write_provenance

log = logging.getLogger(__name__)


def select_questions(path: str | Path, limit: int | None = None, types: list[str] | None = None) -> list[Question]:
    """The questions of a golden file or test set, optionally only some types and the first ``limit``."""
    questions = load_questions(path)
    if types:
        questions = [q for q in questions if q.type in types]
    return questions[:limit] if limit else questions


def prompt_config(cfg_prompt: DictConfig, shot_pool: str | None) -> PromptConfig:
    """The prompt settings; ``shot_pool`` overrides the pool, and a missing few-shot directory (no shared
    BioASQ data beside the checkout) falls back to the embedded demo pool with a warning."""
    config = PromptConfig.from_dict(OmegaConf.to_container(cfg_prompt, resolve=True))
    pool = shot_pool or config.pool
    if config.n_shots and pool != "demo" and not (config.pool_path and Path(config.pool_path).exists()):
        log.warning("shot pool %s not found at %s: using the embedded demo pool", pool, config.pool_path)
        pool = "demo"
    return dataclasses.replace(config, pool=pool)


def phase_a_answers(
    cfg: DictConfig, questions: list[Question], backend: Backend, output_dir: Path
) -> dict[str, SystemAnswer]:
    """Documents and snippets per question: from a Phase A submission file, or by running Phase A now."""
    if cfg.task.phase_a_submission:
        found = load_questions(cfg.task.phase_a_submission)
        return {q.id: SystemAnswer(q.id, q.type, q.body, q.documents, q.snippets) for q in found}
    if cfg.retrieval.get("index") is None:
        raise ValueError(f"task={cfg.task.name} needs a search index: choose retrieval=tantivy|bm25|elasticsearch")
    from bioqa.pipeline.phase_a import run_phase_a

    index = instantiate(cfg.retrieval.index)
    result = run_phase_a(questions, backend, index, instantiate(cfg.retrieval.phase_a))
    write_json(output_dir / "phase_a_traces.json", result.traces)
    write_json(output_dir / "phase_a_stats.json", result.stats)  # per-stage wall time, model calls and errors
    return {a.id: a for a in result.answers}


def with_wikipedia(cfg: DictConfig, questions: list[Question], backend: Backend) -> list[Question]:
    """Questions with Wikipedia introductions appended as extra context snippets (prompting only)."""
    wiki_cfg = cfg.retrieval.get("wikipedia")
    if wiki_cfg is None or not wiki_cfg.max_articles:
        return questions
    articles = instantiate(wiki_cfg).context_for([q.body for q in questions], backend)
    return [
        dataclasses.replace(
            q,
            snippets=[
                *q.snippets,
                *(Snippet(document=a.url, text=a.as_context(), begin_section="wikipedia") for a in found),
            ],
        )
        for q, found in zip(questions, articles, strict=True)
    ]


def log_to_experiment_loggers(cfg: DictConfig, metrics: dict[str, Any]) -> None:
    """Send the run's config and numeric metrics to the configured loggers (W&B offline by default, CSV)."""
    loggers = instantiate(cfg.get("logger") or {})
    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for logger in loggers.values():
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        logger.log_metrics(numeric)
        logger.finalize("success")
        if hasattr(logger, "experiment") and hasattr(logger.experiment, "finish"):
            logger.experiment.finish()


def infer_from_config(cfg: DictConfig, output_dir: str | Path) -> InferenceResult:
    """Everything ``python infer.py ...`` does, given its composed config."""
    output_dir = Path(output_dir)
    questions = select_questions(cfg.data.golden, cfg.data.limit, cfg.data.types)
    log.info("%d questions from %s", len(questions), cfg.data.golden)
    write_provenance(output_dir, [cfg.data.golden])
    cache_path = cfg.cache.path if cfg.cache.enabled else None
    backend = build_backend(cfg.model, cache_path)
    try:
        answering = AnsweringConfig.from_dict(
            {**OmegaConf.to_container(cfg.answering, resolve=True), "kinds": tuple(cfg.task.kinds)}
        )
        phase_a = phase_a_answers(cfg, questions, backend, output_dir) if cfg.task.snippets == "phase_a" else None
        builder = PromptBuilder(
            prompt_config(cfg.prompt, cfg.data.shot_pool),
            count_tokens=backend.count_tokens,
            context_window=backend.context_window,
            max_new_tokens=max(answering.max_new_tokens.values()),
        )
        result = run_inference(
            with_wikipedia(cfg, questions, backend),
            backend,
            builder.build,
            output_dir,
            answering=answering,
            golden_path=cfg.data.golden,
            evaluation=EvaluationOptions(**OmegaConf.to_container(cfg.evaluation, resolve=True)),
            phase_a=phase_a,
        )
    finally:
        backend.close()
    log_to_experiment_loggers(cfg, result.metrics)
    return result
