"""One inference run: questions → (Phase A) → answers → submission → scores, all inside one run directory.

``run_inference`` takes plain objects (usable from a notebook); ``infer.py`` builds them from Hydra config.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bioqa.data import Question, Snippet, SystemAnswer, write_submission
from bioqa.evaluation.options import EvaluationOptions
from bioqa.models import Backend
from bioqa.pipeline.accounting import auxiliary_calls, summarize_records, summary_line
from bioqa.pipeline.answering import AnsweringConfig, answer_questions, assemble_answers
from bioqa.pipeline.journal import PredictionJournal
from bioqa.prompts import AnswerKind, BuiltPrompt
from bioqa.rundir import PER_QUESTION, PREDICTIONS, SUBMISSION, RunMetrics, write_jsonl, write_metrics

log = logging.getLogger(__name__)


@dataclass
class InferenceResult:
    output_dir: Path
    answers: list[SystemAnswer]
    metrics: dict[str, Any]
    records: list[dict[str, Any]]


def with_snippets(questions: Sequence[Question], phase_a: dict[str, SystemAnswer]) -> list[Question]:
    """Questions whose documents and snippets come from our own Phase A output (Phase A+), not the golden file."""
    empty = SystemAnswer(id="", type="summary")
    return [
        replace(q, documents=list(phase_a.get(q.id, empty).documents), snippets=list(phase_a.get(q.id, empty).snippets))
        for q in questions
    ]


def with_context(questions: Sequence[Question], context: Mapping[str, Sequence[Snippet]]) -> list[Question]:
    """Questions with extra context snippets (e.g. Wikipedia introductions) appended to their own."""
    return [replace(q, snippets=[*q.snippets, *context.get(q.id, ())]) for q in questions]


def score_submission(
    golden_path: str | Path, submission_path: str | Path, options: EvaluationOptions, phase: str, output_dir: Path
) -> dict[str, Any]:
    """Official measures (+ ROUGE, + bootstrap CIs) of the run's submission; prints the table and
    writes ``per_question.jsonl`` (the file evaluate.py writes too). Returns ``EvaluationReport.to_json()``."""
    from bioqa.evaluation import evaluate_submission, format_table

    report = evaluate_submission(
        golden_path,
        submission_path,
        phase=phase,
        version=options.version,
        rouge=options.rouge,
        bootstrap=options.bootstrap,
        seed=options.seed,
    )
    write_jsonl(output_dir / PER_QUESTION, report.per_question)
    print(format_table(report))
    return report.to_json()


def run_inference(
    questions: Sequence[Question],
    backend: Backend,
    build_prompt: Callable[[Question, AnswerKind], BuiltPrompt],
    output_dir: str | Path,
    *,
    answering: AnsweringConfig | None = None,
    golden_path: str | Path | None = None,
    evaluation: EvaluationOptions = EvaluationOptions(),
    phase_a: dict[str, SystemAnswer] | None = None,
    context: Mapping[str, Sequence[Snippet]] | None = None,
    run_info: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> InferenceResult:
    """Answer ``questions`` and write the run's outputs into ``output_dir``.

    Writes ``predictions.jsonl`` (one record per question and answer kind, as they arrive),
    ``submission.json`` (official format) and ``metrics.json`` (official measures with CIs when
    ``golden_path`` has answers, plus accounting). Rerunning into the same directory resumes.
    When ``phase_a`` is given, answers use its snippets and the submission carries its documents and
    snippets too (Phase A+). ``context`` (question id → snippets, e.g. Wikipedia) is added to the prompts'
    snippets after that, never to the submission. ``run_info`` (e.g. the shot pool actually used) goes into
    ``metrics.json`` as is. Ends with one summary line on stderr.
    """
    answering = answering or AnsweringConfig()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if phase_a is not None:
        questions = with_snippets(questions, phase_a)
    prompted = with_context(questions, context) if context else list(questions)
    started = time.perf_counter()
    with PredictionJournal(output_dir / PREDICTIONS) as journal:
        before = {(r["id"], r["kind"]): r for r in journal.records()}
        records = answer_questions(prompted, backend, build_prompt, journal, answering, progress=progress)
    wall = time.perf_counter() - started
    resumed = {(r["id"], r["kind"]) for r in records if before.get((r["id"], r["kind"])) is r}
    answers = assemble_answers(questions, records, phase_a)
    write_submission(output_dir / SUBMISSION, answers)

    summary = summarize_records(records, rerun_wall_time_s=wall, resumed=resumed)
    facts: dict[str, Any] = {f"accounting.{k}": v for k, v in summary.items()}
    facts["run.model"] = backend.model_id
    facts["run.questions"] = len(questions)
    facts.update(run_info or {})
    if summary["errors"]:
        log.warning(
            "%d request(s) failed; rerun the same command to retry them (others come from cache)", summary["errors"]
        )
    if summary["truncated_ideal"]:
        log.warning(
            "%d ideal answer(s) were cut at answering.max_new_tokens.ideal and are submitted truncated; "
            "raise the limit to let them finish",
            summary["truncated_ideal"],
        )
    report = None
    if golden_path is not None and evaluation.enabled and any(q.has_golden_answer for q in questions):
        phase = "AB" if phase_a is not None else "B"
        report = score_submission(golden_path, output_dir / SUBMISSION, evaluation, phase, output_dir)
    metrics = RunMetrics.scored(report, facts)
    write_metrics(output_dir, metrics)
    print(f"{output_dir.name}: {summary_line(summary, auxiliary_calls(facts))}", file=sys.stderr)
    return InferenceResult(output_dir, answers, metrics.flat(), records)
