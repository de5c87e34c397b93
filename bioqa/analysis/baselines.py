"""Reference baselines that need no model, scored like any run (a real submission through the official measures).

* yes/no: always the majority answer of the few-shot yes/no pool (the answers of earlier BioASQ batches; ``yes``
  when no pool is given — the majority class of every BioASQ training set). Never the batch's own golden answers.
* factoid / list: the most frequent *entities* of the question's given snippets. An entity here is a maximal run
  (1–4 tokens) of "name-like" tokens: a token with an upper-case letter or a digit after its first character
  (``BRCA1``, ``IL-6``, ``mRNA``), or a capitalised token that does not start a sentence (``Alzheimer``); stop
  words break a run, and entities whose tokens all occur in the question are dropped (the question's own terms
  are rarely its answer). Ranked by count, ties by first occurrence; factoid: top 5, list: top 5.
* ideal: the first given snippet, verbatim (what a reader must see a model beat: copying).

Phase A (documents/snippets) has no baseline here yet: a BM25 baseline needs a search index over the corpus
(``retrieval=bm25`` runs it through ``infer.py task=phase_a``; such runs appear in the report like any other).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from bioqa.analysis.model import BASELINE_MODEL
from bioqa.analysis.runs import Run, batch_name
from bioqa.data import Question, SystemAnswer, load_questions, write_submission
from bioqa.evaluation import evaluate_submission
from bioqa.rundir import BASELINE, PER_QUESTION, SUBMISSION, RunMetrics, write_json, write_jsonl, write_metrics
from bioqa.runs import write_provenance

log = logging.getLogger(__name__)

TOP_K = {"factoid": 5, "list": 5}
MAX_ENTITY_TOKENS = 4
_TOKEN = re.compile(r"[A-Za-z0-9][\w\-/+.']*[\w+]|[A-Za-z0-9]")
_SENTENCE_END = re.compile(r"[.!?;:]\s*$")
# fmt: off
STOP_WORDS = frozenset({
    "a", "an", "the", "and", "or", "of", "in", "on", "at", "to", "for", "with", "by", "from", "as", "is", "are",
    "was", "were", "be", "been", "this", "that", "these", "those", "it", "its", "we", "our", "their", "there",
    "here", "however", "also", "which", "who", "what", "when", "where", "whether", "not", "no", "yes", "than",
    "then", "thus", "both", "each", "other", "such", "may", "can", "could", "should", "would", "will", "into",
    "onto", "over", "under", "between", "among", "during", "after", "before", "while", "because", "although",
    "study", "studies", "results", "conclusion", "conclusions", "background", "methods", "objective",
})
# fmt: on


def _name_like(token: str, sentence_start: bool) -> bool:
    if token.lower() in STOP_WORDS:
        return False
    if any(c.isupper() or c.isdigit() for c in token[1:]):
        return True
    return token[0].isupper() and not sentence_start


def snippet_entities(snippets: Iterable[str], question: str = "") -> list[str]:
    """Entities of ``snippets`` (see the module docstring), most frequent first."""
    asked = {t.lower() for t in _TOKEN.findall(question)}
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    for text in snippets:
        run: list[str] = []
        previous = ""
        for match in _TOKEN.finditer(text):
            token = match.group()
            start = not previous or bool(_SENTENCE_END.search(text[: match.start()]))
            if _name_like(token, start) and len(run) < MAX_ENTITY_TOKENS:
                run.append(token)
            else:
                _count(run, asked, counts, first)
                run = [token] if _name_like(token, start) else []
            previous = token
        _count(run, asked, counts, first)
    return sorted(counts, key=lambda e: (-counts[e], first[e]))


def _count(run: list[str], asked: set[str], counts: Counter[str], first: dict[str, int]) -> None:
    if run and not all(t.lower() in asked for t in run):
        entity = " ".join(run)
        counts[entity] += 1
        first.setdefault(entity, len(first))


def majority_yesno(pool_dir: str | Path | None) -> tuple[str, str]:
    """(answer, where it comes from): the majority final answer of the few-shot yes/no pool files."""
    files = sorted(Path(pool_dir).glob("*YesNo*.jsonl")) if pool_dir and Path(pool_dir).is_dir() else []
    answers: Counter[str] = Counter()
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            text = json.loads(line)["messages"][-1]["content"].strip().lower() if line.strip() else ""
            if text.startswith(("yes", "no")):
                answers["yes" if text.startswith("yes") else "no"] += 1
    if not answers:
        return "yes", "default (majority class of the BioASQ training sets)"
    answer = answers.most_common(1)[0][0]
    return answer, f"majority of {sum(answers.values())} few-shot yes/no answers ({dict(answers)})"


def baseline_answer(question: Question, yesno: str) -> SystemAnswer:
    texts = [s.text for s in question.snippets]
    exact: str | list[list[str]] | None = None
    if question.type == "yesno":
        exact = yesno
    elif question.type in TOP_K:
        exact = [[e] for e in snippet_entities(texts, question.body)[: TOP_K[question.type]]]
    ideal = texts[0] if texts else ""
    return SystemAnswer(question.id, question.type, question.body, exact_answer=exact, ideal_answer=ideal)


def baseline_run(
    golden: str | Path,
    question_ids: Sequence[str] | None,
    output_dir: str | Path,
    yesno: tuple[str, str] = ("yes", "default"),
    bootstrap: int = 1000,
    seed: int = 0,
) -> Run:
    """Answer ``question_ids`` of ``golden`` (all when None) with the baselines, score the submission with the
    official measures and write a run directory (submission, metrics, per-question scores, provenance)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    wanted = set(question_ids) if question_ids is not None else None
    questions = [q for q in load_questions(golden) if wanted is None or q.id in wanted]
    write_submission(output_dir / SUBMISSION, [baseline_answer(q, yesno[0]) for q in questions])
    report = evaluate_submission(
        golden, output_dir / SUBMISSION, phase="B", bootstrap=bootstrap, seed=seed, selected=wanted
    )
    write_jsonl(output_dir / PER_QUESTION, report.per_question)
    facts = {"run.model": BASELINE_MODEL, "run.questions": len(questions)}
    write_metrics(output_dir, RunMetrics.scored(report.to_json(), facts))
    write_json(output_dir / BASELINE, {"yesno": yesno[0], "yesno_source": yesno[1], "top_k": TOP_K})
    provenance = write_provenance(output_dir, [golden])
    return Run(
        path=output_dir,
        model=BASELINE_MODEL,
        batch=batch_name(str(golden)),
        golden=str(golden),
        metrics={k: v for k, v in report.to_json()["metrics"].items()},
        ci={k: list(v) for k, v in report.ci.items()},
        accounting={"questions": len(questions), "cost_usd": 0.0, "parse_failure_rate": 0.0},
        per_question=report.per_question,
        git_hash=provenance["git"]["commit"],
        created=provenance["created"],
    )
