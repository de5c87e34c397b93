"""Ensembles of finished runs (beyond the paper; BioASQ 13b's strongest teams combine models).

Members are run directories that answered the same questions; each run votes once (a copied run directory, the
same config run twice, or a run that is also inside an ensemble member is refused: runs are told apart by their run
identity, ``ensemble.json`` records every run that voted). The ensemble is a normal run: a submission, metrics
with CIs, provenance listing its members, plus ``ensemble_traces.jsonl`` with every vote and fused score.

* yes/no: majority vote of the members that answered; a tie goes to the answer of the first member (in the order
  given) whose answer is among the tied ones.
* factoid and list: reciprocal-rank fusion (RRF, ``score = Σ 1 / (rrf_k + rank)``) of the members' candidates;
  candidates that differ only in case, spacing or punctuation at the ends are one entity. Factoid keeps the five best;
  list keeps the entities named by at least ``list_min_votes`` of the members that answered (at least the best one).
* ideal: the answer of a chosen member (``ideal=member``; the next member with an answer if it has none), or one
  written by a model from the members' answers (``ideal=condense``).
* Phase A documents and snippets: RRF of the members' ranked lists.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bioqa.data import Question, Snippet, SystemAnswer, load_questions, write_submission
from bioqa.data.records import MAX_DOCUMENTS, MAX_FACTOID_CANDIDATES, MAX_SNIPPETS
from bioqa.errors import ConfigError
from bioqa.models import Backend, ChatRequest, GenerationParams
from bioqa.prompts.template import fill
from bioqa.rundir import (
    ENSEMBLE,
    ENSEMBLE_TRACES,
    HYDRA_CONFIG,
    IDENTITY,
    METRICS,
    SUBMISSION,
    RunMetrics,
    read_metrics,
    write_json,
    write_metrics,
)
from bioqa.runs import file_sha256

if TYPE_CHECKING:
    from bioqa.config.infer import InferConfig

log = logging.getLogger(__name__)

#: The condensing prompt (:mod:`bioqa.prompts.template`: ``{n}``, ``{question}`` and ``{answers}`` are filled).
CONDENSE_PROMPT = (
    "Here are {n} answers to the biomedical question '{question}', written by different systems:\n\n{answers}\n\n"
    "Write one ideal answer of at most 200 words that keeps what the answers agree on and is supported by them. "
    "Return only the answer."
)


@dataclass(frozen=True)
class EnsembleConfig:
    """How the members' answers are combined (see the module docstring); ``infer.py task=ensemble`` parses these
    settings (``ensemble.*``) with :class:`bioqa.config.infer.Ensemble`."""

    runs: tuple[str, ...]
    rrf_k: int = 60
    list_min_votes: float = 0.5
    ideal: Literal["member", "condense"] = "member"
    ideal_member: int = 0
    condense_max_tokens: int = 300


@dataclass
class Member:
    """A finished run: its directory, its answers by question id, and what produced it."""

    run_dir: Path
    answers: dict[str, Question]
    golden: str | None
    model: str | None
    metrics: dict[str, Any] = field(default_factory=dict)
    #: The runs that vote through this member, as ``(key, run directory)``: the run itself (its run identity's
    #: fingerprint, or its real path when it has none), or for an ensemble the runs that vote through its members.
    voters: list[tuple[str, str]] = field(default_factory=list)


def voters(run_dir: Path, depth: int = 0) -> list[tuple[str, str]]:
    """The runs that vote through ``run_dir`` (see :attr:`Member.voters`)."""
    ensemble = run_dir / ENSEMBLE
    if ensemble.is_file() and depth < 20:
        recorded = json.loads(ensemble.read_text(encoding="utf-8"))
        if "voters" in recorded:
            return [tuple(v) for v in recorded["voters"]]  # type: ignore[misc]
        return [v for member in recorded.get("ensemble.members", []) for v in voters(Path(member), depth + 1)]
    identity = run_dir / IDENTITY
    try:
        return [(f"identity:{json.loads(identity.read_text(encoding='utf-8'))['fingerprint']}", str(run_dir))]
    except (OSError, ValueError, KeyError, TypeError):
        return [(f"path:{os.path.realpath(run_dir)}", str(run_dir))]


def _voter_place(member: Member, run_dir: str) -> str:
    return run_dir if str(member.run_dir) == run_dir else f"{run_dir} (inside the ensemble {member.run_dir})"


def distinct_voters(members: Sequence[Member]) -> list[tuple[str, str]]:
    """Every run that votes through ``members``; a run that would vote twice (a copied run directory, the same
    config run twice, or a run that is also inside an ensemble member) is refused naming both places."""
    seen: dict[str, str] = {}
    for member in members:
        for key, run_dir in member.voters:
            place = _voter_place(member, run_dir)
            if key in seen:
                same = "has the same run identity as" if key.startswith("identity:") else "is the same run as"
                raise ConfigError(f"ensemble.runs: {place} {same} {seen[key]}: it would vote twice; list each run once")
            seen[key] = place
    return [v for m in members for v in m.voters]


def load_member(run_dir: str | os.PathLike) -> Member:
    """Read a finished run directory (its ``submission.json``, resolved config and metrics)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"ensemble member {run_dir}: not a run directory")
    submission = run_dir / SUBMISSION
    if not submission.is_file():
        raise ConfigError(f"ensemble member {run_dir}: no submission.json (an unfinished or failed run?)")
    golden = model = None
    config_path = run_dir / HYDRA_CONFIG
    if config_path.is_file():
        from omegaconf import OmegaConf

        config = OmegaConf.load(config_path)
        golden = OmegaConf.select(config, "data.golden")
        model = OmegaConf.select(config, "model.name")
    metrics = read_metrics(run_dir).flat() if (run_dir / METRICS).is_file() else {}
    model = metrics.get("run.model", model)
    answers = {q.id: q for q in load_questions(submission)}
    return Member(run_dir, answers, golden, model, metrics, voters(run_dir))


def entity_key(text: str) -> str:
    """Candidates that differ only in case, inner spacing or punctuation at the ends are the same entity."""
    return " ".join(text.casefold().split()).strip(" .,;:!?'\"()[]")


def fuse_ranked(rankings: Sequence[Sequence[str]], rrf_k: int, key: Callable[[str], str] = lambda x: x) -> list[dict]:
    """Reciprocal-rank fusion: one entry per distinct item (by ``key``), best first, with its score, the number of
    rankings naming it and its most frequent surface form; ties keep first-seen order."""
    scores: dict[str, float] = defaultdict(float)
    votes: Counter[str] = Counter()
    forms: dict[str, Counter[str]] = defaultdict(Counter)
    for ranking in rankings:
        seen: set[str] = set()
        for rank, item in enumerate(ranking, 1):
            k = key(item)
            if not k or k in seen:
                continue
            seen.add(k)
            scores[k] += 1.0 / (rrf_k + rank)
            votes[k] += 1
            forms[k][item] += 1
    order = sorted(scores, key=lambda k: -scores[k])  # sorted() is stable: ties stay in first-seen order
    return [{"item": forms[k].most_common(1)[0][0], "score": scores[k], "votes": votes[k]} for k in order]


def vote_yesno(answers: Sequence[str | None]) -> tuple[str | None, dict[str, int]]:
    """Majority answer of the members that answered; a tie goes to the first member's answer among the tied."""
    counts = Counter(a for a in answers if a in ("yes", "no"))
    if not counts:
        return None, {}
    best = max(counts.values())
    tied = {a for a, c in counts.items() if c == best}
    return next(a for a in answers if a in tied), dict(counts)


def _entities(exact: Any) -> list[str]:
    return [str(item[0]) for item in exact or [] if item]


def combine_question(
    question_id: str, members: Sequence[Member], config: EnsembleConfig
) -> tuple[SystemAnswer, dict[str, Any]]:
    """The ensemble's answer to one question and the trace of how it was reached."""
    own = [m.answers[question_id] for m in members]
    first = own[0]
    trace: dict[str, Any] = {"id": question_id, "type": first.type}
    exact: Any = None
    if first.type == "yesno":
        exact, trace["votes"] = vote_yesno([q.exact_answer for q in own])  # type: ignore[misc]
    elif first.type in ("factoid", "list"):
        ranked = [_entities(q.exact_answer) for q in own if q.exact_answer]
        fused = fuse_ranked(ranked, config.rrf_k, entity_key)
        if first.type == "factoid":
            kept = fused[:MAX_FACTOID_CANDIDATES]
        else:
            needed = math.ceil(config.list_min_votes * len(ranked)) if ranked else 0
            kept = [f for f in fused if f["votes"] >= needed] or fused[:1]
            trace["min_votes"] = needed
        trace["fused"] = fused
        exact = [[f["item"]] for f in kept] or None
    ideal_order = [config.ideal_member, *(i for i in range(len(own)) if i != config.ideal_member)]
    ideal_from = next((i for i in ideal_order if own[i].ideal_answer), None)
    ideal = own[ideal_from].ideal_answer[0] if ideal_from is not None else None
    trace["ideal_from"] = ideal_from
    documents = [d["item"] for d in fuse_ranked([q.documents for q in own], config.rrf_k)][:MAX_DOCUMENTS]
    snippets_by_key = {_snippet_key(s): s for q in own for s in q.snippets}
    fused_snippets = fuse_ranked([[_snippet_key(s) for s in q.snippets] for q in own], config.rrf_k)
    snippets = [snippets_by_key[s["item"]] for s in fused_snippets][:MAX_SNIPPETS]
    answer = SystemAnswer(question_id, first.type, first.body, documents, snippets, exact, ideal)
    return answer, trace


def _snippet_key(snippet: Snippet) -> str:
    return json.dumps([snippet.document, snippet.begin_section, snippet.offset_begin, snippet.offset_end, snippet.text])


def condense_ideal(
    answers: list[SystemAnswer], members: Sequence[Member], backend: Backend, max_new_tokens: int
) -> list[dict[str, Any]]:
    """Replace each ideal answer by one the model writes from every member's ideal answer; returns a record per
    request (errors included: a failed request keeps the chosen member's answer, and is counted)."""
    requests, indexes = [], []
    for index, answer in enumerate(answers):
        texts = [m.answers[answer.id].ideal_answer[0] for m in members if m.answers[answer.id].ideal_answer]
        if len(texts) < 2:
            continue
        listed = "\n".join(f"{i}. {t}" for i, t in enumerate(texts, 1))
        prompt = fill(CONDENSE_PROMPT, n=len(texts), question=answer.body, answers=listed)
        messages = ({"role": "user", "content": prompt},)
        requests.append(ChatRequest(messages, GenerationParams(max_new_tokens=max_new_tokens)))
        indexes.append(index)
    records = []
    for index, completion in zip(indexes, backend.generate(requests), strict=True):
        text = completion.text.strip()
        if completion.ok and text:
            answers[index] = replace(answers[index], ideal_answer=text)
        records.append({"id": answers[index].id, "ok": completion.ok and bool(text), "error": completion.error})
    return records


def same_questions(members: Sequence[Member]) -> list[str]:
    """The question ids every member answered, in the first member's order; members must share one question set."""
    ids = list(members[0].answers)
    for member in members[1:]:
        if set(member.answers) != set(ids):
            missing = len(set(ids) - set(member.answers))
            extra = len(set(member.answers) - set(ids))
            raise ConfigError(
                f"ensemble member {member.run_dir} answered other questions than {members[0].run_dir} "
                f"({missing} missing, {extra} extra): members must answer the same questions"
            )
        types = {q: (members[0].answers[q].type, member.answers[q].type) for q in ids}
        if any(a != b for a, b in types.values()):
            raise ConfigError(f"ensemble member {member.run_dir}: question types differ from {members[0].run_dir}")
    return ids


def members_golden(members: Sequence[Member]) -> str | None:
    """The questions file every member answered (``None`` when no member recorded one)."""
    paths = {m.golden for m in members if m.golden}
    hashes = {file_sha256(p) if Path(p).is_file() else p for p in paths}
    if len(hashes) > 1:
        raise ConfigError(f"ensemble members answered different question files: {sorted(paths)}")
    return next(iter(paths), None)


def run_ensemble(
    config: EnsembleConfig,
    output_dir: str | os.PathLike,
    backend: Backend | None = None,
) -> tuple[list[SystemAnswer], dict[str, Any]]:
    """Combine the member runs into ``output_dir``: ``submission.json``, ``ensemble.json`` (members, settings,
    fallbacks) and ``ensemble_traces.jsonl``. Returns the answers and run facts for ``metrics.json``."""
    members = [load_member(run) for run in config.runs]
    all_voters = distinct_voters(members)
    ids = same_questions(members)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    answers, traces = [], []
    for qid in ids:
        answer, trace = combine_question(qid, members, config)
        answers.append(answer)
        traces.append(trace)
    condensed: list[dict[str, Any]] = []
    if config.ideal == "condense":
        if backend is None:
            raise ValueError("ideal='condense' needs a backend to write the ideal answers")
        condensed = condense_ideal(answers, members, backend, config.condense_max_tokens)
        failed = sum(not r["ok"] for r in condensed)
        if failed:
            log.warning("%d condensed ideal answer(s) failed: the chosen member's answer is kept", failed)
    fallbacks = sum(t["ideal_from"] not in (None, config.ideal_member) for t in traces)
    if fallbacks:
        log.warning("%d ideal answer(s) taken from another member: member %d had none", fallbacks, config.ideal_member)
    write_submission(output_dir / SUBMISSION, answers)
    with (output_dir / ENSEMBLE_TRACES).open("w", encoding="utf-8") as handle:
        for trace in traces:
            handle.write(json.dumps(trace, ensure_ascii=False) + "\n")
    facts = {
        "run.model": "ensemble(" + " + ".join(str(m.model) for m in members) + ")",
        "run.questions": len(ids),
        "ensemble.members": [str(m.run_dir) for m in members],
        "ensemble.ideal_fallbacks": fallbacks,
        "ensemble.condense_failures": sum(not r["ok"] for r in condensed),
        "accounting.cost_usd": sum(float(m.metrics.get("accounting.cost_usd", 0.0)) for m in members),
    }
    write_json(
        output_dir / ENSEMBLE,
        {
            "config": asdict(config),
            "members": [{"run_dir": str(m.run_dir), "model": m.model, "golden": m.golden} for m in members],
            "condensed": condensed,
            "voters": all_voters,
            **facts,
        },
    )
    return answers, facts


def ensemble_from_config(
    config: InferConfig, backend: Callable[[], Backend], output_dir: str | os.PathLike
) -> dict[str, Any]:
    """``python infer.py task=ensemble ensemble.runs=[RUN, ...] data.golden=...``, parsed: combine, score, write
    metrics; ``backend`` builds the model that condenses ideal answers (``ensemble.ideal=condense`` only)."""
    from bioqa.pipeline.inference import EvaluationOptions, score_submission
    from bioqa.runs import write_provenance

    settings = config.ensemble
    ensemble = EnsembleConfig(**{**settings.model_dump(), "runs": tuple(settings.runs)})
    golden_path = config.data.golden
    output_dir = Path(output_dir)
    members = [load_member(run) for run in ensemble.runs]
    golden = members_golden(members)
    if golden is not None and os.path.realpath(golden) != os.path.realpath(golden_path):
        raise ConfigError(
            f"data.golden={golden_path} but the ensemble members answered {golden}: pass data.golden={golden}"
        )
    write_provenance(output_dir, [golden_path, *(str(m.run_dir / SUBMISSION) for m in members)])
    model = backend() if ensemble.ideal == "condense" else None
    try:
        answers, facts = run_ensemble(ensemble, output_dir, model)
    finally:
        if model is not None:
            model.close()
    questions = load_questions(golden_path)
    report = None
    if config.evaluation.enabled and any(q.has_golden_answer for q in questions):
        phase = "AB" if any(a.documents or a.snippets for a in answers) else "B"
        options = EvaluationOptions(**config.evaluation.model_dump())
        report = score_submission(golden_path, output_dir / SUBMISSION, options, phase, output_dir)
    run_metrics = RunMetrics.scored(report, facts)
    write_metrics(output_dir, run_metrics)
    return run_metrics.flat()
