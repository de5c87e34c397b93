"""``infer.py``'s glue: build the run's objects from the composed Hydra config, bind the run directory to them,
then call ``run_inference``."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from bioqa.config.infer import validate_infer_config
from bioqa.data import QUESTION_TYPES, Question, Snippet, SystemAnswer, load_questions
from bioqa.errors import ConfigError
from bioqa.loggers import build_loggers, log_run
from bioqa.models import Backend
from bioqa.models.registry import build_backend
from bioqa.pipeline.accounting import check_failures, check_max_fraction
from bioqa.pipeline.answering import AnsweringConfig
from bioqa.pipeline.inference import EvaluationOptions, InferenceResult, run_inference
from bioqa.prompts import PromptBuilder, PromptConfig
from bioqa.rundir import PER_QUESTION, PHASE_A_STATS, PHASE_A_TRACES, PREDICTIONS, write_json
from bioqa.runs import RunDirectory, file_sha256, write_provenance

log = logging.getLogger(__name__)

#: Values of ``data.shot_pool_fallback``: ``null`` (a missing pool is an error) or ``demo``.
POOL_FALLBACKS = (None, "demo")


def select_questions(path: str | Path, limit: Any = None, types: Any = None) -> list[Question]:
    """The questions of a golden file or test set: only ``types`` (a type or a list of them; ``None``: all), and
    of those the first ``limit`` (a positive integer; ``None``: all). Selecting no question is an error."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"data.limit must be a positive integer or null (all questions), got {limit!r}")
    if isinstance(types, str):
        types = [types]
    if types is not None:
        types = list(types)
        unknown = [t for t in types if t not in QUESTION_TYPES]
        if unknown or not types:
            raise ConfigError(
                f"data.types: unknown question type(s) {unknown or types}; valid: {', '.join(QUESTION_TYPES)} "
                "(or null for all)"
            )
    questions = load_questions(path)
    if types is not None:
        questions = [q for q in questions if q.type in types]
    questions = questions[:limit] if limit is not None else questions
    if not questions:
        raise ConfigError(f"{path}: no question selected (data.types={types}, data.limit={limit})")
    return questions


def prompt_config(
    cfg_prompt: DictConfig, shot_pool: str | None, fallback: str | None = None, answering: bool = True
) -> PromptConfig:
    """The prompt settings; ``shot_pool`` overrides the pool. A few-shot pool whose files are missing is an
    error, unless ``fallback="demo"`` asks for the embedded demo pool instead (with a warning; the returned
    config names the pool actually used), or no answer is asked for (``answering=False``: Phase A only)."""
    if fallback not in POOL_FALLBACKS:
        raise ConfigError(f"data.shot_pool_fallback must be null or demo, got {fallback!r}")
    try:
        config = PromptConfig.from_dict(OmegaConf.to_container(cfg_prompt, resolve=True))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"prompt: {error}") from None
    pool = shot_pool or config.pool
    missing = not (config.pool_path and Path(config.pool_path).exists())
    if answering and config.n_shots and pool != "demo" and missing:
        if fallback != "demo":
            raise ConfigError(
                f"few-shot pool {pool!r} not found at {config.pool_path}: set prompt.pool_path (or BIOQA_SHARED), "
                "choose prompt.pool=demo, or allow the embedded demo pool with data.shot_pool_fallback=demo"
            )
        log.warning(
            "shot pool %s not found at %s: using the embedded demo pool (recorded in the run)", pool, config.pool_path
        )
        pool = "demo"
    return dataclasses.replace(config, pool=pool)


def _retrieval_identity(cfg: DictConfig) -> dict[str, Any]:
    """The retrieval settings that shape the prompts: Phase A's (when it runs now) and Wikipedia's (when on)."""
    node = OmegaConf.to_container(cfg.retrieval, resolve=True) or {}
    used: dict[str, Any] = {}
    if cfg.task.snippets == "phase_a" and not cfg.task.phase_a_submission:
        index = {k: v for k, v in (node.get("index") or {}).items() if k != "show_progress"}
        used = {"index": index, "phase_a": node.get("phase_a")}
    wiki = node.get("wikipedia") or {}
    if wiki.get("max_articles"):
        used["wikipedia"] = {k: v for k, v in wiki.items() if k not in ("user_agent", "timeout_s", "max_retries")}
    return used


def _prompt_identity(prompt: PromptConfig) -> dict[str, Any]:
    """The prompt settings that shape the prompts (no pool when there are no shots; no path for the demo pool)."""
    if not prompt.n_shots:
        prompt = dataclasses.replace(prompt, selection="first_n", pool="demo")
    return dataclasses.asdict(dataclasses.replace(prompt, pool_path=None) if prompt.pool == "demo" else prompt)


def run_identity(cfg: DictConfig, prompt: PromptConfig, backend: Backend, answering: AnsweringConfig) -> dict[str, Any]:
    """Everything that determines a run's answers: model, the prompt config actually used, the question file's
    content and selection, decoding, task and retrieval. Scoring options are not part of it (a resume may
    rescore)."""
    types = cfg.data.types
    submission = cfg.task.phase_a_submission
    return {
        "backend": {"kind": backend.kind, "model_id": backend.model_id},
        "prompt": _prompt_identity(prompt) if answering.kinds else None,
        "data": {
            "sha256": file_sha256(cfg.data.golden),
            "limit": cfg.data.limit,
            "types": sorted([types] if isinstance(types, str) else types) if types is not None else None,
        },
        "answering": {
            "kinds": list(answering.kinds),
            "max_new_tokens": {kind: answering.max_new_tokens[kind] for kind in answering.kinds},
            "temperature": answering.temperature,
            "seed": answering.seed if answering.temperature > 0 else None,
        },
        "task": {
            "name": cfg.task.name,
            "snippets": cfg.task.snippets,
            "phase_a_submission_sha256": file_sha256(submission) if submission else None,
        },
        "retrieval": _retrieval_identity(cfg),
    }


def phase_a_answers(
    cfg: DictConfig, questions: list[Question], backend: Backend, output_dir: Path
) -> tuple[dict[str, SystemAnswer], dict[str, float]]:
    """Documents and snippets per question, from a Phase A submission file or by running Phase A now; and the
    Phase A numbers for the run's metrics (wall time, model calls and errors, per stage)."""
    if cfg.task.phase_a_submission:
        found = load_questions(cfg.task.phase_a_submission)
        return {q.id: SystemAnswer(q.id, q.type, q.body, q.documents, q.snippets) for q in found}, {}
    if cfg.retrieval.get("index") is None:
        raise ValueError(f"task={cfg.task.name} needs a search index: choose retrieval=tantivy|bm25|elasticsearch")
    from bioqa.pipeline.phase_a import run_phase_a

    index = instantiate(cfg.retrieval.index)
    result = run_phase_a(questions, backend, index, instantiate(cfg.retrieval.phase_a))
    write_json(output_dir / PHASE_A_TRACES, result.traces)
    write_json(output_dir / PHASE_A_STATS, result.stats)  # per-stage wall time, model calls and errors
    return {a.id: a for a in result.answers}, phase_a_metrics(result.stats)


def phase_a_metrics(stats: dict[str, Any]) -> dict[str, float]:
    """``phase_a.*`` metrics from Phase A's stats: totals, and wall time / calls / errors of each stage."""
    metrics = {f"phase_a.{k}": v for k, v in stats.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    for stage, values in (stats.get("stages") or {}).items():
        for key, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics[f"phase_a.{stage}.{key}"] = value
    return metrics


def wikipedia_context(cfg: DictConfig, questions: list[Question], backend: Backend) -> dict[str, list[Snippet]]:
    """Wikipedia introductions per question id, as extra context snippets for the prompts (empty when off)."""
    wiki_cfg = cfg.retrieval.get("wikipedia")
    if wiki_cfg is None or not wiki_cfg.max_articles:
        return {}
    articles = instantiate(wiki_cfg).context_for([q.body for q in questions], backend)
    return {
        q.id: [Snippet(document=a.url, text=a.as_context(), begin_section="wikipedia") for a in found]
        for q, found in zip(questions, articles, strict=True)
    }


def log_to_experiment_loggers(cfg: DictConfig, metrics: dict[str, Any], output_dir: Path) -> None:
    """Send the run's config, metrics (with CI bounds) and per-question scores to the configured loggers (W&B
    offline by default, CSV); question and answer texts only with ``logger.log_texts=true``."""
    loggers = build_loggers(cfg.get("logger"))
    if not loggers:
        return
    per_question = read_jsonl(output_dir / PER_QUESTION)
    texts = run_texts(output_dir, cfg.data.golden) if (cfg.get("logger") or {}).get("log_texts") else None
    log_run(loggers, OmegaConf.to_container(cfg, resolve=True), metrics, per_question, texts)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file (none when it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_texts(output_dir: Path, golden: str | Path) -> dict[str, dict[str, Any]]:
    """Question, system answers and golden answers per question id (for ``logger.log_texts=true`` only)."""
    texts: dict[str, dict[str, Any]] = {
        q.id: {"question": q.body, "golden_exact": q.exact_answer, "golden_ideal": q.ideal_answer}
        for q in load_questions(golden)
    }
    for record in read_jsonl(output_dir / PREDICTIONS):
        texts.setdefault(record["id"], {})[f"system_{record['kind']}"] = record.get("parsed")
    return texts


def run_with_prompts(
    questions: Sequence[Question],
    backend: Backend,
    prompt: PromptConfig,
    output_dir: str | Path,
    *,
    answering: AnsweringConfig,
    **options: Any,
) -> InferenceResult:
    """:func:`~bioqa.pipeline.inference.run_inference` with ``prompt``'s prompts fitted into the backend's context
    window, room left for the longest answer ``answering`` allows; ``options``: run_inference's other keywords."""
    builder = PromptBuilder(
        prompt,
        count_tokens=backend.count_tokens,
        context_window=backend.context_window,
        max_new_tokens=max(answering.max_new_tokens.values()),
    )
    return run_inference(questions, backend, builder.build, output_dir, answering=answering, **options)


def infer_from_config(cfg: DictConfig, output_dir: str | Path) -> InferenceResult:
    """Everything ``python infer.py ...`` does, given its composed config.

    The run directory is locked for the run and bound to :func:`run_identity` (a resume with another identity
    is refused). Raises :class:`~bioqa.errors.TooManyFailures` after writing every output when more requests
    failed than ``errors.max_fraction`` allows.
    """
    output_dir = Path(output_dir)
    if cfg.task.name == "ensemble":
        from bioqa.pipeline.ensemble import ensemble_from_config

        with RunDirectory(output_dir):
            metrics = ensemble_from_config(cfg, output_dir)
        log_to_experiment_loggers(cfg, metrics, output_dir)
        return InferenceResult(output_dir, [], metrics, [])
    validate_infer_config(cfg)
    max_fraction = check_max_fraction((cfg.get("errors") or {}).get("max_fraction", 0.0))
    questions = select_questions(cfg.data.golden, cfg.data.limit, cfg.data.types)
    log.info("%d questions from %s", len(questions), cfg.data.golden)
    answering = AnsweringConfig.from_dict(
        {**OmegaConf.to_container(cfg.answering, resolve=True), "kinds": tuple(cfg.task.kinds)}
    )
    requested_pool = cfg.data.shot_pool or cfg.prompt.pool
    prompt = prompt_config(cfg.prompt, cfg.data.shot_pool, cfg.data.get("shot_pool_fallback"), bool(answering.kinds))
    run_info = {"run.shot_pool": prompt.pool if prompt.n_shots and answering.kinds else None}
    if prompt.n_shots and prompt.pool != requested_pool:
        run_info["run.shot_pool_requested"] = requested_pool
    with RunDirectory(output_dir) as run:
        backend = build_backend(cfg.model, cfg.cache.path if cfg.cache.enabled else None)
        try:
            run.bind(run_identity(cfg, prompt, backend, answering))
            write_provenance(output_dir, [cfg.data.golden])
            phase_a = None
            if cfg.task.snippets == "phase_a":
                phase_a, phase_a_stats = phase_a_answers(cfg, questions, backend, output_dir)
                run_info.update(phase_a_stats)
            result = run_with_prompts(
                questions,
                backend,
                prompt,
                output_dir,
                answering=answering,
                golden_path=cfg.data.golden,
                evaluation=EvaluationOptions(**OmegaConf.to_container(cfg.evaluation, resolve=True)),
                phase_a=phase_a,
                context=wikipedia_context(cfg, questions, backend),
                run_info=run_info,
            )
        finally:
            backend.close()
    log_to_experiment_loggers(cfg, result.metrics, output_dir)
    check_failures(result.metrics["accounting.errors"], result.metrics["accounting.requests"], max_fraction, output_dir)
    return result
