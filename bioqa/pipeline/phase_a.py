"""Phase A (documents and snippets) as in the seed paper, over any model backend and search index.

LLM strategy, stage by stage for all questions at once (so backends can batch):
query generation (few-shot) → search top-N → broader query while nothing is found (bounded), then a plain
bag-of-words query → snippet extraction per top document (quotes located to exact offsets, unplaceable
quotes dropped and counted) → LLM reranking of the snippets (BM25/embedding order when its output is
unusable) → at most 10 documents and 10 snippets in the official format.

Every stage shows a progress bar and is timed; :class:`PhaseAResult` carries per-stage wall time, model-call and
model-error counts (``stats``) beside the per-question traces. A failed model call is never silently an empty
reply: it is counted in the question's trace (``model_errors``) and in the stage's stats, and warned about.

``oracle_stages`` answers any subset of the model stages perfectly from the golden file
(:mod:`bioqa.pipeline.phase_a_oracle`): the ablation that shows where Phase A loses, and its ceiling.

The ``bm25`` strategy needs no model: bag-of-words search and sentence selection by BM25 (optionally mixed
with sentence embeddings) — a cheap, strong baseline.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tqdm.auto import tqdm

from bioqa.answers import RANKING_SCHEMA, SNIPPETS_SCHEMA, parse_list, parse_query
from bioqa.answers.phase_a import parse_tagged_query
from bioqa.data import MAX_DOCUMENTS, MAX_SNIPPETS, Question, Snippet, SystemAnswer, pubmed_url
from bioqa.errors import ConfigError
from bioqa.models import Backend, ChatRequest, GenerationParams
from bioqa.pipeline.phase_a_oracle import ORACLE_STAGES, PhaseAOracle
from bioqa.pipeline.phase_a_paper import article_text, load_stage_shots, numbered_snippets, shot_question
from bioqa.prompts.template import fill
from bioqa.retrieval.base import Hit, SearchIndex, bow_query, search_traced
from bioqa.retrieval.locate import Span, locate, sentence_spans
from bioqa.retrieval.scoring import PassageScorer

log = logging.getLogger(__name__)
PROMPT_KEYS = ("system", "query", "broader", "extract", "rerank")


@dataclass
class PhaseAConfig:
    """Everything Phase A needs besides questions, backend and index; prompt templates fill ``{question}``,
    ``{failed_queries}``, ``{original_query}``, ``{title}``, ``{abstract}``, ``{article}`` and ``{snippets}``
    (:mod:`bioqa.prompts.template`: other braces, a JSON example, are literal).

    ``style="paper"``: the seed paper's prompts (:mod:`bioqa.pipeline.phase_a_paper`): ``shots`` per stage (query,
    extract, rerank) from ``shot_files``, free-text replies (no JSON schema), the query read from ``##`` tags."""

    strategy: Literal["llm", "bm25"] = "llm"
    style: Literal["bioqa", "paper"] = "bioqa"
    shots: dict[str, int] = field(default_factory=dict)  # paper style: n shots per stage
    shot_files: dict[str, str | None] = field(default_factory=dict)  # paper style: a file per stage
    #: query_string: the model writes a query string | more_like_this: the model answers from the Wikipedia context
    #: (``prompts["wiki_query"]``) and its answer is a more-like-this query of ``mlt_size`` documents (the paper's)
    query_source: Literal["query_string", "more_like_this"] = "query_string"
    mlt_size: int = 100
    prompts: dict[str, str] = field(default_factory=dict)
    fewshot: list[dict[str, str]] = field(default_factory=list)  # [{"question": ..., "query": ...}]
    search_k: int = 50
    max_broader_attempts: int = 2
    extract_documents: int = 10
    rerank_candidates: int = 30
    min_fuzzy_ratio: float = 0.65
    max_documents: int = MAX_DOCUMENTS
    max_snippets: int = MAX_SNIPPETS
    baseline_documents: int = 10
    doc_prior_weight: float = 0.5
    embedding_model: str | None = None
    query_max_tokens: int = 96
    extract_max_tokens: int = 384
    rerank_max_tokens: int = 96
    oracle_stages: list[str] = field(default_factory=list)  # of ORACLE_STAGES: answered from the golden file
    show_progress: bool = True
    #: paper style: the shot turns of each stage, read from ``shot_files`` (query: ``(question, completion)`` pairs)
    stage_shots: dict[str, list] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.strategy not in ("llm", "bm25"):
            raise ValueError(f"phase A strategy must be 'llm' or 'bm25', got {self.strategy!r}")
        if self.style not in ("bioqa", "paper"):
            raise ValueError(f"phase A style must be 'bioqa' or 'paper', got {self.style!r}")
        if self.query_source not in ("query_string", "more_like_this"):
            raise ValueError(f"phase A query_source must be query_string or more_like_this, got {self.query_source!r}")
        if unknown := [s for s in self.oracle_stages if s not in ORACLE_STAGES]:
            raise ValueError(f"oracle_stages: {unknown} are not stages; choose from {list(ORACLE_STAGES)}")
        if self.oracle_stages and self.strategy != "llm":
            raise ValueError("oracle_stages replace the model's stages: they need strategy 'llm'")
        if self.strategy == "llm" and self.style == "paper":
            self.stage_shots = load_stage_shots(self.shots, self.shot_files)
        keys = PROMPT_KEYS + (("query_shot",) if self.stage_shots.get("query") else ())
        keys += ("wiki_query",) if self.query_source == "more_like_this" else ()
        missing = [k for k in keys if not self.prompts.get(k)]
        if self.strategy == "llm" and missing:
            raise ValueError(f"phase A config: prompt templates missing for {missing}")


@dataclass
class StageStats:
    """One stage of Phase A: wall time, model requests and how many failed, searches run."""

    wall_s: float = 0.0
    model_calls: int = 0
    model_errors: int = 0
    searches: int = 0
    first_error: str | None = None
    unusable: int = 0  # replies that arrived but hold nothing usable (no snippets array, no snippet ids)
    quotes: int = 0  # extraction: quotes the replies held
    dropped: int = 0  # extraction: quotes not found in their document (not snippets; listed in the traces)
    oracle: bool = False  # answered from the golden file, not by the model


class PhaseAStats:
    """Per-stage statistics of one Phase A run (stages in the order they first ran)."""

    def __init__(self, show_progress: bool = True):
        self.stages: dict[str, StageStats] = {}
        self.show_progress = show_progress

    def __getitem__(self, stage: str) -> StageStats:
        return self.stages.setdefault(stage, StageStats())

    @contextmanager
    def timed(self, stage: str) -> Iterator[StageStats]:
        began = time.perf_counter()
        try:
            yield self[stage]
        finally:
            self[stage].wall_s += time.perf_counter() - began

    def bar(self, stage: str, total: int, unit: str) -> tqdm:
        return tqdm(total=total, desc=f"phase A: {stage}", unit=unit, disable=not self.show_progress, leave=False)

    def as_dict(self) -> dict[str, Any]:
        """``{"wall_s", "model_calls", "model_errors", "stages": {stage: {...}}}`` (JSON-ready)."""
        stages = {
            name: {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(st).items()}
            for name, st in self.stages.items()
        }
        return {
            "oracle_stages": [name for name, st in self.stages.items() if st.oracle],
            "wall_s": round(sum(st.wall_s for st in self.stages.values()), 3),
            "model_calls": sum(st.model_calls for st in self.stages.values()),
            "model_errors": sum(st.model_errors for st in self.stages.values()),
            "unusable": sum(st.unusable for st in self.stages.values()),
            "stages": stages,
        }


@dataclass
class PhaseAResult:
    """Answers (question order), one trace per question and the run's :class:`PhaseAStats` as a dict."""

    answers: list[SystemAnswer]
    traces: list[dict]
    stats: dict[str, Any]


# ----------------------------------------------------------------------------- helpers


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _document_text(hit: Hit) -> tuple[str, str]:
    return _clean(hit.title), _clean(hit.abstract)


def _snippet(hit: Hit, span: Span) -> Snippet:
    return Snippet(
        document=pubmed_url(hit.pmid),
        text=span.text,
        begin_section=span.section,
        end_section=span.section,
        offset_begin=span.begin,
        offset_end=span.end,
    )


def _answer(question: Question, documents: list[str], snippets: list[Snippet], config: PhaseAConfig) -> SystemAnswer:
    return SystemAnswer(
        id=question.id,
        type=question.type,
        body=question.body,
        documents=list(dict.fromkeys(documents))[: config.max_documents],
        snippets=snippets[: config.max_snippets],
    )


def _documents_by_snippets(snippets: Sequence[Snippet], hits: Sequence[Hit]) -> list[str]:
    """Documents in order of their best snippet, then the rest in search order."""
    return list(dict.fromkeys([s.document for s in snippets] + [pubmed_url(h.pmid) for h in hits]))


def _fits(backend: Backend, messages: tuple, max_new_tokens: int) -> bool:
    return backend.count_tokens(messages) + max_new_tokens <= backend.context_window


# ----------------------------------------------------------------------------- the LLM strategy


class _LLMPhaseA:
    def __init__(
        self,
        backend: Backend | None,
        index: SearchIndex,
        config: PhaseAConfig,
        oracle: PhaseAOracle | None,
        stage_backends: Mapping[str, Backend] | None = None,
    ):
        self.backend, self.index, self.config, self.oracle = backend, index, config, oracle
        self.stage_backends = dict(stage_backends or {})
        self.prompts = config.prompts
        self.scorer = PassageScorer(config.embedding_model)
        self.stats = PhaseAStats(config.show_progress)
        self.traces: list[dict] = []

    def backend_for(self, stage: str) -> Backend:
        """The stage's own model (``retrieval.phase_a_models``; broader queries: the query model), else the run's."""
        return self.stage_backends.get("query" if stage in ("broader", "wiki_query") else stage, self.backend)

    @property
    def paper(self) -> bool:
        return self.config.style == "paper"

    def _messages(
        self, user: str, shots: Sequence[tuple[str, str]] = (), turns: Sequence[dict] = ()
    ) -> tuple[dict[str, str], ...]:
        messages = [{"role": "system", "content": self.prompts["system"]}, *turns]
        for shot_user, shot_answer in shots:
            messages += [{"role": "user", "content": shot_user}, {"role": "assistant", "content": shot_answer}]
        messages.append({"role": "user", "content": user})
        return tuple(messages)

    def _generate(
        self, stage: str, owners: Sequence[int], messages: Sequence[tuple], max_new_tokens: int, schema=None
    ) -> list[str | None]:
        """Replies in request order; ``None`` for a failed request, which is counted in the stage's stats and
        in the owning question's trace (``model_errors``), and warned about."""
        params = GenerationParams(max_new_tokens=max_new_tokens)
        texts: list[str | None] = [None] * len(messages)
        with self.stats.timed(stage) as stat, self.stats.bar(stage, len(messages), "call") as bar:
            for k, completion in self.backend_for(stage).stream([ChatRequest(m, params, schema) for m in messages]):
                stat.model_calls += 1
                if completion.ok:
                    texts[k] = completion.text
                else:
                    stat.model_errors += 1
                    stat.first_error = stat.first_error or str(completion.error)[:300]
                    errors = self.traces[owners[k]].setdefault("model_errors", {})
                    errors[stage] = errors.get(stage, 0) + 1
                bar.update(1)
        failed = sum(t is None for t in texts)
        if failed:
            log.warning(
                "phase A %s: %d of %d model calls failed (first: %s)", stage, failed, len(texts), stat.first_error
            )
        return texts

    def _oracle(self, stage: str) -> PhaseAOracle | None:
        """The oracle when it answers ``stage`` (``None`` when the model does)."""
        return self.oracle if stage in self.config.oracle_stages else None

    def _mark_oracle(self, stage: str, owners: Sequence[int]) -> None:
        """Record that the oracle answers ``stage`` for ``owners``: in the stage's stats and the owners' traces."""
        self.stats[stage].oracle = True
        for i in owners:
            stages = self.traces[i].setdefault("oracle_stages", [])
            if stage not in stages:
                stages.append(stage)

    def query_messages(self, question: str) -> tuple:
        if self.paper:
            pool = self.config.stage_shots["query"]
            shots = [(fill(self.prompts["query_shot"], question=shot_question(q)), c) for q, c in pool]
        else:
            shots = [(fill(self.prompts["query"], question=s["question"]), s["query"]) for s in self.config.fewshot]
        return self._messages(fill(self.prompts["query"], question=question), shots)

    def _query(self, text: str | None) -> tuple[str, dict]:
        """The query in a reply, and how it was read (paper style: ``##`` tags, else bioqa's reading)."""
        tagged = parse_tagged_query(text or "") if self.paper else None
        query = tagged or parse_query(text or "")
        return query, {"completion": text, "tagged": tagged is not None} if self.paper else {}

    def _search(self, i: int, query: str, source: str, hits: list[list[Hit]], reply: dict | None = None) -> None:
        with self.stats.timed("search") as stat:
            found, info = search_traced(self.index, query, self.config.search_k) if query else ([], {})
            stat.searches += 1
        entry = {"query": query, "source": source, "hits": len(found), **(reply or {})}
        if info.get("mode", "strict") != "strict":
            entry["parse"] = info
        self.traces[i]["queries"].append(entry)
        hits[i] = found

    def _more_like_this(self, questions: Sequence[Question], contexts: Sequence[str], hits: list[list[Hit]]) -> None:
        """The paper's Wikipedia-grounded query: the model answers from the context, its answer is searched for
        documents like it."""
        requests = [
            self._messages(fill(self.prompts["wiki_query"], wiki_context=context, question=q.body))
            for q, context in zip(questions, contexts, strict=True)
        ]
        answers = self._generate("wiki_query", range(len(questions)), requests, self.config.query_max_tokens)
        for i, text in enumerate(answers):
            with self.stats.timed("search") as stat:
                hits[i] = self.index.more_like_this(text or "", self.config.mlt_size)
                stat.searches += 1
            self.traces[i]["queries"].append({"query": text or "", "source": "more_like_this", "hits": len(hits[i])})

    def run(self, questions: Sequence[Question], wiki_context: Sequence[str] | None = None) -> PhaseAResult:
        cfg = self.config
        self.traces = traces = [{"id": q.id, "strategy": "llm", "queries": []} for q in questions]
        hits: list[list[Hit]] = [[] for _ in questions]
        everyone = range(len(questions))
        if oracle := self._oracle("query"):
            self._mark_oracle("query", everyone)
            with self.stats.timed("search") as stat:
                for i, q in enumerate(questions):
                    hits[i] = oracle.documents(q, self.index, cfg.search_k)
                    stat.searches += 1
                    traces[i]["queries"].append({"query": None, "source": "oracle", "hits": len(hits[i])})
        elif cfg.query_source == "more_like_this":
            self._more_like_this(questions, wiki_context or [""] * len(questions), hits)
        else:
            outputs = self._generate(
                "query", everyone, [self.query_messages(q.body) for q in questions], cfg.query_max_tokens
            )
            for i, text in enumerate(outputs):
                query, reply = self._query(text)
                self._search(i, query, "llm", hits, reply)
        for _ in range(cfg.max_broader_attempts):
            empty = [i for i in everyone if not hits[i]]
            if not empty:
                break
            requests = []
            for i in empty:
                failed = "\n".join(t["query"] or "(empty)" for t in traces[i]["queries"])
                last = traces[i]["queries"][-1]["query"]
                prompt = fill(
                    self.prompts["broader"], question=questions[i].body, failed_queries=failed, original_query=last
                )
                requests.append(self._messages(prompt))
            for i, text in zip(empty, self._generate("broader", empty, requests, cfg.query_max_tokens), strict=True):
                query, reply = self._query(text)
                self._search(i, query, "broader", hits, reply)
        for i, q in enumerate(questions):
            if not hits[i]:
                self._search(i, bow_query(q.body), "bag_of_words", hits)

        ranked = self._rerank(questions, self._extract(questions, hits, traces), traces)
        answers = []
        for i, q in enumerate(questions):
            answers.append(_answer(q, _documents_by_snippets(ranked[i], hits[i]), ranked[i], cfg))
            traces[i].update(
                retrieved=len(hits[i]), documents=len(answers[-1].documents), snippets=len(answers[-1].snippets)
            )
        return PhaseAResult(answers, traces, self.stats.as_dict())

    def _extract_messages(self, question: str, hit: Hit) -> tuple:
        title, abstract = _document_text(hit)
        while True:
            article = article_text(pubmed_url(hit.pmid), title, abstract) if self.paper else ""
            user = fill(self.prompts["extract"], question=question, title=title, abstract=abstract, article=article)
            messages = self._messages(user, turns=self.config.stage_shots.get("extract", ()))
            if len(abstract) < 200 or _fits(self.backend_for("extract"), messages, self.config.extract_max_tokens):
                return messages
            abstract = abstract[: int(len(abstract) * 0.8)]

    def _extract(self, questions: Sequence[Question], hits: list[list[Hit]], traces: list[dict]) -> list[list[Snippet]]:
        jobs = [(i, hit) for i, q in enumerate(questions) for hit in hits[i][: self.config.extract_documents]]
        owners = [i for i, _ in jobs]
        if oracle := self._oracle("extract"):
            self._mark_oracle("extract", owners)
            outputs = [oracle.extract_reply(questions[i], hit) for i, hit in jobs]
        else:
            outputs = self._generate(
                "extract",
                owners,
                [self._extract_messages(questions[i].body, hit) for i, hit in jobs],
                self.config.extract_max_tokens,
                None if self.paper else SNIPPETS_SCHEMA,
            )
        found: list[dict[tuple, Snippet]] = [{} for _ in questions]
        stats = [
            {
                "documents": 0,
                "model_errors": 0,
                "unparsable": 0,
                "quotes": 0,
                "located": {"exact": 0, "normalized": 0, "fuzzy": 0},
                "dropped": 0,
                "dropped_quotes": [],
            }
            for _ in questions
        ]
        for (i, hit), text in zip(jobs, outputs, strict=True):
            stat = stats[i]
            stat["documents"] += 1
            if text is None:
                stat["model_errors"] += 1
                continue
            quotes = parse_list(text)
            if quotes is None:
                stat["unparsable"] += 1
                self.stats["extract"].unusable += 1
                continue
            for quote in quotes:
                if not isinstance(quote, str) or not quote.strip():
                    continue
                stat["quotes"] += 1
                span = locate(quote, hit.title, hit.abstract, min_ratio=self.config.min_fuzzy_ratio)
                if span is None:
                    stat["dropped"] += 1
                    if len(stat["dropped_quotes"]) < 5:
                        stat["dropped_quotes"].append(quote[:200])
                    continue
                stat["located"][span.method] += 1
                snippet = _snippet(hit, span)
                found[i].setdefault((snippet.document, span.section, span.begin, span.end), snippet)
        for trace, stat in zip(traces, stats, strict=True):
            trace["extraction"] = stat
        stage = self.stats["extract"]
        quotes, dropped = (sum(stat[key] for stat in stats) for key in ("quotes", "dropped"))
        stage.quotes += quotes
        stage.dropped += dropped
        _warn_unusable("extract", stage.unusable, len(jobs), "no array of snippets: no snippets from them")
        if dropped:
            first = next(q for stat in stats for q in stat["dropped_quotes"])
            log.warning(
                "phase A extract: %d of %d quotes are not in their document and were dropped (first: %r; "
                "phase_a_traces.json lists them per question)",
                dropped,
                quotes,
                first[:80],
            )
        return [list(f.values()) for f in found]

    def _rerank_messages(self, question: str, candidates: list[Snippet]) -> tuple[tuple, list[Snippet]]:
        while True:
            if self.paper:
                listing = numbered_snippets([s.text for s in candidates])
            else:
                listing = json.dumps(
                    [{"id": k, "text": _clean(s.text)} for k, s in enumerate(candidates)], ensure_ascii=False
                )
            user = fill(self.prompts["rerank"], question=question, snippets=listing)
            messages = self._messages(user, turns=self.config.stage_shots.get("rerank", ()))
            if len(candidates) <= 1 or _fits(self.backend_for("rerank"), messages, self.config.rerank_max_tokens):
                return messages, candidates
            candidates = candidates[: max(1, int(len(candidates) * 0.75))]

    def _rerank(self, questions: Sequence[Question], snippets: list[list[Snippet]], traces: list[dict]) -> list:
        """Snippets of every question in the model's order; the BM25/embedding order fills in after the
        model's choices and replaces them entirely when its output is unusable."""
        fallbacks, jobs = [], []
        for i, q in enumerate(questions):
            scores = self.scorer.scores(q.body, [s.text for s in snippets[i]])
            fallbacks.append([s for _, s in sorted(zip(scores, snippets[i], strict=True), key=lambda p: -p[0])])
            candidates = fallbacks[i][: self.config.rerank_candidates]
            if snippets[i] and self._oracle("rerank"):
                jobs.append((i, (), candidates))
            elif snippets[i]:
                jobs.append((i, *self._rerank_messages(q.body, candidates)))
            else:
                traces[i]["rerank"] = {"mode": "none", "candidates": 0, "llm_ranked": 0}
        owners = [i for i, _, _ in jobs]
        if oracle := self._oracle("rerank"):
            self._mark_oracle("rerank", owners)
            outputs = [oracle.rerank_reply(questions[i], candidates) for i, _, candidates in jobs]
        else:
            outputs = self._generate(
                "rerank",
                owners,
                [m for _, m, _ in jobs],
                self.config.rerank_max_tokens,
                None if self.paper else RANKING_SCHEMA,
            )
        ranked = [list(f) for f in fallbacks]
        for (i, _, candidates), text in zip(jobs, outputs, strict=True):
            chosen: list[Snippet] = []
            for value in parse_list(text or "") or []:
                k = value if isinstance(value, int) else int(value) if str(value).strip().isdigit() else -1
                if 0 <= k < len(candidates) and candidates[k] not in chosen:
                    chosen.append(candidates[k])
            traces[i]["rerank"] = {
                "mode": ("oracle" if oracle else "llm") if chosen else "model_error" if text is None else "fallback",
                "candidates": len(candidates),
                "llm_ranked": len(chosen),
            }
            ranked[i] = chosen + [s for s in fallbacks[i] if s not in chosen]
            self.stats["rerank"].unusable += not oracle and text is not None and not chosen
        _warn_unusable("rerank", self.stats["rerank"].unusable, len(jobs), "no snippet ids: the retrieval order stands")
        return ranked


def _warn_unusable(stage: str, unusable: int, replies: int, consequence: str) -> None:
    """One line when replies of ``stage`` arrived but held nothing usable (counted as failed requests)."""
    if unusable:
        log.warning("phase A %s: %d of %d replies unusable (%s)", stage, unusable, replies, consequence)


# ----------------------------------------------------------------------------- the retrieval-only baseline


def _baseline(questions: Sequence[Question], index: SearchIndex, config: PhaseAConfig) -> PhaseAResult:
    scorer = PassageScorer(config.embedding_model)
    stats = PhaseAStats(config.show_progress)
    answers, traces = [], []
    for q in tqdm(questions, desc="phase A: bm25", unit="question", disable=not config.show_progress, leave=False):
        query = q.body if getattr(index, "reads_text", False) else bow_query(q.body)
        with stats.timed("search") as stat:
            hits = index.search(query, config.search_k) if query else []
            stat.searches += 1
        with stats.timed("select"):
            passages: list[tuple[Hit, Span, int]] = []
            top = hits[: config.baseline_documents]
            for rank, hit in enumerate(top):
                for section, text in (("title", hit.title), ("abstract", hit.abstract)):
                    for begin, end in sentence_spans(text):
                        passages.append((hit, Span(section, begin, end, text[begin:end], "sentence"), rank))
            scores = scorer.scores(q.body, [span.text for _, span, _ in passages])
            prior = config.doc_prior_weight
            ranked = sorted(
                zip(scores, passages, strict=True),
                key=lambda pair: -(pair[0] + prior * (1 - pair[1][2] / max(1, len(top)))),
            )
            snippets = [_snippet(hit, span) for _, (hit, span, _) in ranked]
        answers.append(_answer(q, [pubmed_url(h.pmid) for h in hits], snippets, config))
        source = "question" if query == q.body else "bag_of_words"
        traces.append(
            {
                "id": q.id,
                "strategy": "bm25",
                "queries": [{"query": query, "source": source, "hits": len(hits)}],
                "retrieved": len(hits),
                "candidates": len(passages),
                "documents": len(answers[-1].documents),
                "snippets": len(answers[-1].snippets),
            }
        )
    return PhaseAResult(answers, traces, stats.as_dict())


def run_phase_a(
    questions: Sequence[Question],
    backend: Backend | None,
    index: SearchIndex,
    config: PhaseAConfig,
    stage_backends: Mapping[str, Backend] | None = None,
    wiki_context: Sequence[str] | None = None,
) -> PhaseAResult:
    """Documents and snippets for every question (same order), one trace dict per question (queries tried
    with their hit counts and how each was parsed, extraction and located/dropped quote counts, rerank mode,
    failed model calls per stage) and per-stage statistics (wall time, model calls and errors, searches).

    ``backend`` may be ``None`` for ``config.strategy == "bm25"`` and when every model stage is an oracle;
    ``stage_backends``: a model per stage (``query`` (broader and Wikipedia-grounded queries too), ``extract``,
    ``rerank``) replacing ``backend`` there; ``wiki_context``: each question's Wikipedia context
    (``config.query_source == "more_like_this"``).
    """
    if config.strategy == "bm25":
        result = _baseline(questions, index, config)
    elif backend is None and set(config.oracle_stages) != set(ORACLE_STAGES):
        raise ValueError("phase A strategy 'llm' needs a model backend")
    else:
        if config.query_source == "more_like_this" and not hasattr(index, "more_like_this"):
            raise ConfigError(f"query_source=more_like_this: {type(index).__name__} cannot search so")
        oracle = PhaseAOracle(questions) if config.oracle_stages else None
        result = _LLMPhaseA(backend, index, config, oracle, stage_backends).run(questions, wiki_context)
    stats = result.stats
    log.info(
        "phase A: %d questions in %.1f s (%s); %d model calls, %d failed",
        len(questions),
        stats["wall_s"],
        ", ".join(f"{name} {st['wall_s']:.1f} s" for name, st in stats["stages"].items()),
        stats["model_calls"],
        stats["model_errors"],
    )
    return result
