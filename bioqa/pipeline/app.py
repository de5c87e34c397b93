"""``infer.py``'s glue: build the run's objects from the composed Hydra config, bind the run directory to them,
then call ``run_inference``."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from bioqa.config.infer import InferConfig, validate_infer_config
from bioqa.data import Question, Snippet, SystemAnswer, load_questions
from bioqa.errors import ConfigError
from bioqa.loggers import build_loggers, log_run
from bioqa.models import Backend
from bioqa.models.registry import build_backend
from bioqa.pipeline.accounting import auxiliary_calls, check_failures
from bioqa.pipeline.answering import AnsweringConfig
from bioqa.pipeline.inference import EvaluationOptions, InferenceResult, run_inference
from bioqa.prompts import PromptBuilder, PromptConfig
from bioqa.prompts.render import SUMMARY_SECTION
from bioqa.rundir import PER_QUESTION, PHASE_A_STATS, PHASE_A_TRACES, PREDICTIONS, TRAINING_INFO, write_json
from bioqa.runs import RunDirectory, file_sha256, write_provenance

log = logging.getLogger(__name__)


def with_shot_pool(prompt: PromptConfig, fallback: str | None = None, answering: bool = True) -> PromptConfig:
    """``prompt`` with the pool a run uses: a few-shot pool whose files are missing is an error, unless
    ``fallback="demo"`` asks for the embedded demo pool instead (with a warning; the returned config names the pool
    actually used), or no answer is asked for (``answering=False``: Phase A only)."""
    missing = not (prompt.pool_path and Path(prompt.pool_path).exists())
    if not (answering and prompt.n_shots and prompt.pool != "demo" and missing):
        return prompt
    if fallback != "demo":
        raise ConfigError(
            f"few-shot pool {prompt.pool!r} not found at {prompt.pool_path}: set prompt.pool_path (or BIOQA_SHARED), "
            "choose prompt.pool=demo, or allow the embedded demo pool with data.shot_pool_fallback=demo"
        )
    log.warning(
        "shot pool %s not found at %s: using the embedded demo pool (recorded in the run)",
        prompt.pool,
        prompt.pool_path,
    )
    return dataclasses.replace(prompt, pool="demo")


def trained_prompt(adapter: str | None) -> PromptConfig | None:
    """The prompt settings an adapter was trained with (``bioqa_training.json``, written by ``train.py``), or
    ``None`` (no adapter, trained on chat JSONL, or a record that no longer parses: warned)."""
    record = Path(adapter) / TRAINING_INFO if adapter else None
    if record is None or not record.is_file():
        return None
    values = json.loads(record.read_text(encoding="utf-8")).get("prompt")
    try:
        return PromptConfig.from_dict(values, prefix=f"{record}: prompt.") if values else None
    except ConfigError as error:
        log.warning("the adapter's training prompt is not used: %s", error)
        return None


def prompt_style(prompt: PromptConfig) -> dict[str, Any]:
    """What makes two prompts ask the same way (not where the shots come from)."""
    return {k: v for k, v in _prompt_identity(prompt).items() if k not in ("pool", "pool_path")}


def _style_line(prompt: PromptConfig) -> str:
    return f"{prompt.n_shots} shots, selection={prompt.selection}, snippet_format={prompt.snippet_format}, " + (
        f"structured={str(prompt.structured).lower()}"
    )


def adapter_prompt(
    adapter: str | None, prompt: PromptConfig, chosen: bool
) -> tuple[PromptConfig, dict[str, Any] | None]:
    """The prompt a run answers with, and what its identity records about the adapter's training prompt: without a
    prompt chosen on the command line (``chosen``), the prompt the adapter was trained with (shots from the run's
    pool); with one that asks differently, that prompt, warned about on stderr."""
    trained = trained_prompt(adapter)
    if trained is None:
        return prompt, None
    if not chosen:
        log.info("prompt: the one model.adapter=%s was trained with (%s)", adapter, _style_line(trained))
        used = dataclasses.replace(trained, pool=prompt.pool, pool_path=prompt.pool_path)
        return used, {"source": "adapter", "matches_training": True}
    matches = prompt_style(trained) == prompt_style(prompt)
    if not matches:
        log.warning(
            "model.adapter=%s was trained with another prompt (%s) than this run's (%s); answers may suffer: "
            "choose the training prompt, or drop the prompt override to use it (recorded in run_identity.json)",
            adapter,
            _style_line(trained),
            _style_line(prompt),
        )
    return prompt, {"source": "command line", "matches_training": matches, "training": prompt_style(trained)}


def prompt_chosen() -> bool:
    """Whether the command line chose the prompt (``prompt=...``, ``prompt.*=...``); outside a Hydra run, yes."""
    if not HydraConfig.initialized():
        return True
    keys = (o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task)
    return any(key == "prompt" or key.startswith("prompt.") for key in keys)


def _retrieval_identity(config: InferConfig) -> dict[str, Any]:
    """The retrieval settings that shape the prompts: Phase A's (when it runs now) and Wikipedia's (when on)."""
    retrieval, used = config.retrieval, {}
    if config.task.snippets == "phase_a" and not config.task.phase_a_submission:
        index = retrieval.index.model_dump(exclude_unset=True) if retrieval.index else {}
        index.pop("show_progress", None)
        phase_a = retrieval.phase_a.model_dump(exclude_unset=True) if retrieval.phase_a else None
        used = {"index": index, "phase_a": phase_a, **_shot_files_identity(phase_a or {})}
    wiki = retrieval.wikipedia
    if wiki is not None and wiki.max_articles:
        unshaping = {"user_agent", "timeout_s", "max_retries"}
        used["wikipedia"] = {k: v for k, v in wiki.model_dump(exclude_unset=True).items() if k not in unshaping}
    return used


def _shot_files_identity(phase_a: dict[str, Any]) -> dict[str, Any]:
    """The sha256 of every Phase A shot file in use (``retrieval/phase_a=paper``: a query shot pool, the paper's
    extraction and rerank examples): the same path with other content is another run."""
    shots, files = phase_a.get("shots") or {}, phase_a.get("shot_files") or {}
    used = {stage: file_sha256(path) for stage, path in files.items() if path and shots.get(stage)}
    return {"phase_a_shot_files_sha256": used} if used else {}


def _prompt_identity(prompt: PromptConfig) -> dict[str, Any]:
    """The prompt settings that shape the prompts (no pool when there are no shots; no path for the demo pool)."""
    if not prompt.n_shots:
        prompt = dataclasses.replace(prompt, selection="first_n", pool="demo")
    return dataclasses.asdict(dataclasses.replace(prompt, pool_path=None) if prompt.pool == "demo" else prompt)


def run_identity(
    config: InferConfig,
    prompt: PromptConfig,
    backend: Backend,
    answering: AnsweringConfig,
    adapter_prompt: dict[str, Any] | None = None,
    stage_backends: dict[str, Backend] | None = None,
) -> dict[str, Any]:
    """Everything that determines a run's answers: model (and Phase A's model per stage), the prompt config actually
    used (and, with an adapter, how it relates to the adapter's training prompt), the question file's content and
    selection, decoding, task and retrieval. Scoring options are not part of it (a resume may rescore)."""
    data, task = config.data, config.task
    adapter = {"adapter_prompt": adapter_prompt} if adapter_prompt is not None else {}
    retrieval = _retrieval_identity(config)
    if stage_backends:
        retrieval["phase_a_backends"] = {s: {"kind": b.kind, "model_id": b.model_id} for s, b in stage_backends.items()}
    return {
        **adapter,
        "backend": {"kind": backend.kind, "model_id": backend.model_id},
        "prompt": _prompt_identity(prompt) if answering.kinds else None,
        "data": {
            "sha256": file_sha256(data.golden),
            "limit": data.limit,
            "types": sorted(data.types) if data.types is not None else None,
            **({"closed_book": True} if data.closed_book else {}),
        },
        "answering": {
            "kinds": list(answering.kinds),
            "max_new_tokens": {kind: answering.max_new_tokens[kind] for kind in answering.kinds},
            "temperature": answering.temperature,
            "seed": answering.seed if answering.temperature > 0 else None,
        },
        "task": {
            "name": task.name,
            "snippets": task.snippets,
            "phase_a_submission_sha256": file_sha256(task.phase_a_submission) if task.phase_a_submission else None,
        },
        "retrieval": retrieval,
    }


def build_stage_backends(cfg: DictConfig, config: InferConfig, cache_path: str | None) -> dict[str, Backend]:
    """Phase A's own model per stage (``retrieval.phase_a_models``), when Phase A runs now and names any."""
    if config.task.snippets != "phase_a" or config.task.phase_a_submission:
        return {}
    nodes = OmegaConf.to_container(cfg.retrieval.get("phase_a_models") or {}, resolve=True)
    return {stage: build_backend(node, cache_path) for stage, node in nodes.items() if node}


def answering_config(config: InferConfig) -> AnsweringConfig:
    """The decoding settings of a parsed config."""
    answering = config.answering
    return AnsweringConfig(
        kinds=tuple(config.task.kinds),
        max_new_tokens=dict(answering.max_new_tokens),
        temperature=answering.temperature,
        chunk_size=answering.chunk_size,
        seed=answering.seed,
    )


def evaluation_options(config: InferConfig) -> EvaluationOptions:
    """The scoring options of a parsed config."""
    return EvaluationOptions(**config.evaluation.model_dump())


def phase_a_answers(
    cfg: DictConfig,
    submission: str | None,
    questions: list[Question],
    backend: Backend,
    output_dir: Path,
    stage_backends: dict[str, Backend] | None = None,
    context: dict[str, list[Snippet]] | None = None,
) -> tuple[dict[str, SystemAnswer], dict[str, float]]:
    """Documents and snippets per question, from a Phase A ``submission`` file or by running Phase A now (the
    ``_target_`` nodes of ``cfg.retrieval``, checked by the schema; ``stage_backends``: a model per stage;
    ``context``: the run's Wikipedia context, read by the Wikipedia-grounded query); and the Phase A numbers for
    the run's metrics (wall time, model calls and errors, per stage)."""
    if submission:
        found = load_questions(submission)
        return {q.id: SystemAnswer(q.id, q.type, q.body, q.documents, q.snippets) for q in found}, {}
    from bioqa.pipeline.phase_a import run_phase_a

    index = instantiate(cfg.retrieval.index)
    wiki = ["\n\n".join(s.text for s in (context or {}).get(q.id, ())) for q in questions]
    result = run_phase_a(questions, backend, index, instantiate(cfg.retrieval.phase_a), stage_backends, wiki)
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


def wikipedia_context(
    node: DictConfig, questions: list[Question], backend: Backend
) -> tuple[dict[str, list[Snippet]], dict[str, int]]:
    """Wikipedia introductions per question id, as extra context snippets for the prompts (``node``: the checked
    ``retrieval.wikipedia`` node that builds the :class:`~bioqa.retrieval.wikipedia.WikipediaContext`), and the
    ``wikipedia.*`` facts of the run: model calls and failures per stage, fetches, questions given context."""
    wikipedia = instantiate(node)
    articles = wikipedia.context_for([q.body for q in questions], backend)
    facts = {f"wikipedia.{k}": v for k, v in {**wikipedia.counts, **wikipedia.calls}.items()}
    facts["wikipedia.questions_with_context"] = sum(bool(found) for found in articles)
    facts["wikipedia.articles"] = sum(len(found) for found in articles)
    context = {
        q.id: [
            Snippet(document=a.url, text=a.as_context(), begin_section=SUMMARY_SECTION if a.summary else "wikipedia")
            for a in found
        ]
        for q, found in zip(questions, articles, strict=True)
    }
    return context, facts


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


def check_snippets(config: InferConfig, questions: Sequence[Question]) -> list[Question]:
    """The questions as the prompts will see them. Phase B answers from the questions' own snippets: questions
    without any (a Phase A test set) are refused, naming the alternatives, unless ``data.closed_book=true`` asks for
    answers without snippets (then every question's snippets are left out, and the run identity records it)."""
    task = config.task
    if config.data.closed_book:
        if task.snippets != "golden":
            raise ConfigError(
                f"data.closed_book=true answers without snippets, but task={task.name} retrieves them: "
                "use it with task=phase_b"
            )
        return [dataclasses.replace(q, snippets=[]) for q in questions]
    lacking = sum(not q.snippets for q in questions)
    if task.snippets == "golden" and task.kinds and lacking:
        raise ConfigError(
            f"task={task.name} answers from the questions' snippets, but {lacking} of {len(questions)} selected "
            f"question(s) in {config.data.golden} have none (a Phase A test set?): retrieve them with "
            "task=phase_a_plus retrieval=tantivy|bm25|elasticsearch, or answer without snippets with "
            "data.closed_book=true"
        )
    return list(questions)


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What ``infer.py`` settles from its config before any model is built: everything :func:`plan_run` checks."""

    config: InferConfig
    questions: list[Question]
    answering: AnsweringConfig
    prompt: PromptConfig
    trained: dict[str, Any] | None  # how the prompt relates to the adapter's training prompt (run identity)
    run_info: dict[str, Any]


def plan_run(cfg: DictConfig) -> RunPlan:
    """Parse ``infer.py``'s composed config (:func:`~bioqa.config.infer.validate_infer_config`) and settle the run's
    questions (:func:`check_snippets`), answering and prompt settings (the few-shot pool, and an offline Wikipedia
    context's cache, must be there), as a run does before building its model; ``python -m bioqa.experiments`` plans
    each job with it. Raises :class:`~bioqa.errors.ConfigError` / :class:`~bioqa.errors.DataFileError` (one line)."""
    inputs = validate_infer_config(cfg)
    config = inputs.config
    answering = answering_config(config)
    if config.task.name == "ensemble":
        return RunPlan(config, inputs.questions, answering, inputs.prompt, None, {})
    questions = check_snippets(config, inputs.questions)
    wiki = config.retrieval.wikipedia
    if wiki is not None and wiki.max_articles and wiki.offline:
        instantiate(cfg.retrieval.wikipedia)  # an offline context opens its cache when built: a missing one is refused
    prompt, trained = adapter_prompt(config.model.adapter, inputs.prompt, prompt_chosen())
    prompt = with_shot_pool(prompt, config.data.shot_pool_fallback, bool(answering.kinds))
    run_info = {"run.shot_pool": prompt.pool if prompt.n_shots and answering.kinds else None}
    if prompt.n_shots and prompt.pool != inputs.prompt.pool:
        run_info["run.shot_pool_requested"] = inputs.prompt.pool
    return RunPlan(config, questions, answering, prompt, trained, run_info)


def infer_from_config(cfg: DictConfig, output_dir: str | Path) -> InferenceResult:
    """Everything ``python infer.py ...`` does, given its composed config: parsed whole first (:func:`plan_run`);
    the typed settings drive the run, the raw config only builds its ``_target_`` objects (backend, index, Phase A,
    Wikipedia, loggers).

    The run directory is locked for the run and bound to :func:`run_identity` (a resume with another identity
    is refused). Raises :class:`~bioqa.errors.TooManyFailures` after writing every output when more requests
    failed than ``errors.max_fraction`` allows.
    """
    output_dir = Path(output_dir)
    plan = plan_run(cfg)
    config = plan.config
    cache_path = config.cache.path if config.cache.enabled else None
    if config.task.name == "ensemble":
        from bioqa.pipeline.ensemble import ensemble_from_config

        with RunDirectory(output_dir):
            metrics = ensemble_from_config(config, lambda: build_backend(cfg.model, cache_path), output_dir)
        log_to_experiment_loggers(cfg, metrics, output_dir)
        return InferenceResult(output_dir, [], metrics, [])
    questions, answering, prompt, run_info = plan.questions, plan.answering, plan.prompt, plan.run_info
    log.info("%d questions from %s", len(questions), config.data.golden)
    wiki = config.retrieval.wikipedia is not None and config.retrieval.wikipedia.max_articles > 0
    with RunDirectory(output_dir) as run:
        backend = build_backend(cfg.model, cache_path)
        stage_backends: dict[str, Backend] = {}
        try:
            stage_backends = build_stage_backends(cfg, config, cache_path)
            run.bind(run_identity(config, prompt, backend, answering, plan.trained, stage_backends))
            write_provenance(output_dir, [config.data.golden])
            context = None
            if wiki:  # before Phase A: its Wikipedia-grounded query reads the context too
                context, wikipedia_facts = wikipedia_context(cfg.retrieval.wikipedia, questions, backend)
                run_info.update(wikipedia_facts)
            phase_a = None
            if config.task.snippets == "phase_a":
                submission = config.task.phase_a_submission
                phase_a, phase_a_stats = phase_a_answers(
                    cfg, submission, questions, backend, output_dir, stage_backends, context
                )
                run_info.update(phase_a_stats)
            result = run_with_prompts(
                questions,
                backend,
                prompt,
                output_dir,
                answering=answering,
                golden_path=config.data.golden,
                evaluation=evaluation_options(config),
                phase_a=phase_a,
                context=context,
                run_info=run_info,
            )
        finally:
            for built in (backend, *stage_backends.values()):
                built.close()
    log_to_experiment_loggers(cfg, result.metrics, output_dir)
    failed, total = result.metrics["accounting.errors"], result.metrics["accounting.requests"]
    aux_failed, aux_total = auxiliary_calls(result.metrics)
    if aux_failed:
        log.warning(
            "%d of %d Phase A / Wikipedia model calls and fetches failed (counted with the answers' failures)",
            aux_failed,
            aux_total,
        )
    check_failures(failed + aux_failed, total + aux_total, config.errors.max_fraction, output_dir)
    return result
