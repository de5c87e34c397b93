"""Score a submission (official measures + ROUGE + bootstrap CIs) or compare two submissions."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from typing import Any, Literal

from bioqa.data.bioasq_json import BioASQFormatError
from bioqa.errors import ConfigError
from bioqa.evaluation.checks import check_pair
from bioqa.evaluation.official import DEFAULT_VERSION, evaluate_phase_a, evaluate_phase_b, load_json
from bioqa.evaluation.registry import Phase as ScoredPhase
from bioqa.evaluation.registry import group_member_keys, iter_metrics
from bioqa.evaluation.report import ComparisonReport, EvaluationReport
from bioqa.evaluation.rouge import RougeOptions, ideal_text, rouge_scores
from bioqa.evaluation.stats import bootstrap_ci, paired_test

log = logging.getLogger(__name__)

Phase = Literal["A", "B", "AB"]
Source = str | os.PathLike | dict


def _questions(data: Any) -> list:
    questions = data.get("questions") if isinstance(data, dict) else None
    return questions if isinstance(questions, list) else []


def detect_phases(system: dict, phase: Phase = "AB") -> tuple[bool, bool, bool]:
    """(phase A, phase B exact answers, ideal answers) to score: ``AB`` picks whatever the submission contains."""
    qs = [q for q in _questions(system) if isinstance(q, dict)]
    has_a = any(q.get(k) for q in qs for k in ("documents", "snippets", "concepts", "triples"))
    has_b = any("exact_answer" in q for q in qs)
    has_ideal = any(q.get("ideal_answer") for q in qs)
    if phase == "A":
        return True, False, False
    if phase == "B":
        return False, True, has_ideal
    if phase == "AB":
        return has_a, has_b, has_ideal
    raise ConfigError(f"phase={phase!r}: expected A, B or AB")


def _rouge_rows(golden: dict, system: dict, source: str, options: RougeOptions) -> list[dict[str, Any]]:
    """Per-question ROUGE for golden questions with ideal answers that the submission answers with one."""
    answers: dict[str, Any] = {}
    for q in _questions(system):
        if isinstance(q, dict) and isinstance(q.get("id"), str) and q["id"] not in answers and "ideal_answer" in q:
            answers[q["id"]] = q["ideal_answer"]
    rows, candidates, references = [], [], []
    for index, g in enumerate(_questions(golden)):
        if not isinstance(g, dict) or g.get("id") not in answers:
            continue
        refs = g.get("ideal_answer")
        refs = [refs] if isinstance(refs, str) else [r for r in refs or [] if isinstance(r, str)]
        value = answers[g["id"]]
        ok = isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        if not ok:
            raise BioASQFormatError(source, g["id"], "ideal_answer", "expected a string (or a list of strings)")
        if not refs:
            continue
        rows.append({"id": g["id"], "index": index, "type": g.get("type")})
        candidates.append(ideal_text(value))
        references.append(refs)
    for row, scores in zip(rows, rouge_scores(candidates, references, options), strict=True):
        row.update(scores)
    return rows


def _merge(*row_lists: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[int, dict[str, Any]] = {}
    for rows in row_lists:
        for row in rows:
            merged.setdefault(row["index"], {}).update(row)
    return [merged[i] for i in sorted(merged)]


def evaluate_submission(
    golden: Source,
    system: Source,
    phase: Phase = "AB",
    version: int = DEFAULT_VERSION,
    rouge: bool = True,
    bootstrap: int = 1000,
    seed: int = 0,
    rouge_options: RougeOptions | None = None,
    selected: Collection[str] | None = None,
) -> EvaluationReport:
    """Every registered measure of the phases scored (the official ones bit-identical to the BioASQ jar), computed
    from the per-question rows by its spec, and bootstrap CIs; ``selected``: the golden ids the submission was meant
    to answer (its coverage is checked against those).

    ``golden``/``system`` are paths or already-parsed JSON dicts. Raises :class:`SubmissionRejected` (a
    :class:`~bioqa.data.BioASQFormatError`) where the official evaluator would crash.
    """
    if bootstrap < 0:  # the version is checked where it is read (official.py)
        raise ConfigError(f"bootstrap={bootstrap}: expected the number of resamples, >= 0 (0 = no CIs)")
    gold_data, gold_label = load_json(golden, "golden (dict)")
    sys_data, sys_label = load_json(system, "submission (dict)")
    warnings = check_pair(gold_data, sys_data, gold_label, sys_label, selected)
    for warning in warnings:
        log.warning("%s", warning)
    do_a, do_b, do_ideal = detect_phases(sys_data, phase)
    if do_a and not detect_phases(sys_data)[0]:  # phase=A asked of a Phase B submission
        warnings.append(f"{sys_label} has no documents, snippets, concepts or triples: phase=A scores every question 0")
        log.warning("%s", warnings[-1])
    rows: list[list[dict[str, Any]]] = []
    phases: list[ScoredPhase] = []
    scorers: tuple[tuple[bool, ScoredPhase, Any], ...] = ((do_a, "A", evaluate_phase_a), (do_b, "B", evaluate_phase_b))
    for enabled, name, scorer in scorers:
        if enabled:
            rows.append(scorer(golden, system, version).per_question)
            phases.append(name)
    if rouge and do_ideal:
        rows.append(_rouge_rows(gold_data, sys_data, sys_label, rouge_options or RougeOptions()))
        phases.append("ideal")
    per_question = _merge(*rows)
    metrics = {s.name: s.compute(per_question) for p in phases for s in iter_metrics(phase=p)}
    counts = {group: sum(1 for r in per_question if key in r) for group, key in group_member_keys().items()}
    ci = bootstrap_ci(per_question, list(metrics), bootstrap, seed)
    return EvaluationReport(
        golden=gold_label,
        system=sys_label,
        phases=phases,
        version=version,
        metrics=metrics,
        ci=ci,
        per_question=per_question,
        counts=counts,
        bootstrap=bootstrap,
        seed=seed,
        warnings=warnings,
    )


def compare_submissions(golden: Source, system_a: Source, system_b: Source, **options: Any) -> ComparisonReport:
    """Score both submissions (``options``: the keywords of :func:`evaluate_submission`); per measure, both on the
    questions counted for both, and A − B with a paired bootstrap CI and p-value and a paired permutation p-value.
    Raises :class:`ConfigError` when the two scored no question in common (there is nothing to compare)."""
    a = evaluate_submission(golden, system_a, **options)
    b = evaluate_submission(golden, system_b, **options)
    if not {r["index"] for r in a.per_question} & {r["index"] for r in b.per_question}:
        raise ConfigError(
            f"{system_a} and {system_b} have no scored question in common ({len(a.per_question)} and "
            f"{len(b.per_question)} questions): nothing to compare"
        )
    shared = [m for m in a.metrics if m in b.metrics]
    if not shared:
        raise ConfigError(
            f"{system_a} and {system_b} have no measure in common ({', '.join(a.phases) or 'none'} vs "
            f"{', '.join(b.phases) or 'none'} scored): nothing to compare; score each alone, or compare submissions "
            "of the same phase"
        )
    return ComparisonReport(a=a, b=b, paired=paired_test(a.per_question, b.per_question, shared, a.bootstrap, a.seed))
