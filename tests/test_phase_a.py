"""Phase A end to end over the real demo index: the retrieval-only baseline, and the LLM strategy's control
flow driven by a scripted backend (fixed replies; it exercises fallbacks, not model quality)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import InFlight, ScriptedBackend, chat
from hydra.utils import instantiate
from omegaconf import OmegaConf

from bioqa.answers import parse_list, parse_query
from bioqa.data import Question, load_questions, pmid_of, pubmed_url, submission_entry
from bioqa.models.litellm_backend import LiteLLMBackend
from bioqa.pipeline.phase_a import PhaseAConfig, PhaseAResult, run_phase_a
from bioqa.resources import demo_corpus_path, demo_golden_path
from bioqa.retrieval import TantivyIndex
from bioqa.retrieval.base import bow_query, read_corpus

CONF = Path(__file__).resolve().parent.parent / "conf" / "retrieval"
CORPUS = {d["pmid"]: d for d in read_corpus(demo_corpus_path())}


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> TantivyIndex:
    return TantivyIndex(demo_corpus_path(), tmp_path_factory.mktemp("tantivy"), show_progress=False)


@pytest.fixture(scope="module")
def questions() -> list[Question]:
    return load_questions(demo_golden_path())


def triple(result: PhaseAResult) -> tuple[list, list, dict]:
    return result.answers, result.traces, result.stats


def phase_a_node():
    """The bioqa prompt set (``phase_a/bioqa.yaml``) as Hydra composes it under ``retrieval``: beside
    ``_wikipedia.yaml`` (the shared system prompt)."""
    prompt_set = {"phase_a": OmegaConf.load(CONF / "phase_a" / "bioqa.yaml")}
    return OmegaConf.merge(OmegaConf.load(CONF / "_wikipedia.yaml"), prompt_set).phase_a


def llm_config(**overrides) -> PhaseAConfig:
    node = phase_a_node()
    node.merge_with(overrides)
    return instantiate(node)


def assert_official(answer, corpus=CORPUS) -> None:
    assert len(answer.documents) <= 10 and len(answer.snippets) <= 10
    assert len(set(answer.documents)) == len(answer.documents)
    for s in answer.snippets:
        doc = corpus[pmid_of(s.document)]
        assert s.begin_section == s.end_section and s.begin_section in ("title", "abstract")
        assert doc[s.begin_section][s.offset_begin : s.offset_end] == s.text
        assert s.text.strip()
    entry = submission_entry(answer)
    assert (
        set(entry["snippets"][0])
        == {"document", "text", "beginSection", "endSection", "offsetInBeginSection", "offsetInEndSection"}
        if answer.snippets
        else True
    )


def test_baseline_finds_the_golden_documents_and_snippets(index, questions):
    answers, traces, _ = triple(run_phase_a(questions, None, index, PhaseAConfig(strategy="bm25")))
    assert [a.id for a in answers] == [q.id for q in questions]
    recall, snippet_hits = [], 0
    for q, a, t in zip(questions, answers, traces, strict=True):
        assert_official(a)
        assert len(a.snippets) == 10 and t["queries"][0]["source"] == "bag_of_words"
        golden = {pmid_of(d) for d in q.documents}
        recall.append(len(golden & {pmid_of(d) for d in a.documents}) / len(golden))
        snippet_hits += any(s.text in {g.text for g in q.snippets} for s in a.snippets[:3])
    assert sum(recall) / len(recall) >= 0.95
    assert snippet_hits >= 0.75 * len(questions)


def test_config_file_builds_a_valid_llm_config():
    config = llm_config()
    assert config.strategy == "llm" and config.search_k == 50 and len(config.fewshot) >= 2
    for key in ("query", "broader", "extract", "rerank"):
        assert "{question}" in config.prompts[key]
    with pytest.raises(ValueError, match="prompt templates missing"):
        PhaseAConfig(strategy="llm", prompts={"system": "x"})
    with pytest.raises(ValueError, match="strategy"):
        PhaseAConfig(strategy="dense")


def test_a_json_example_in_a_prompt_is_literal_text(index, questions):
    """One template language: ``{question}`` is filled, the braces of a JSON example stay (no KeyError)."""
    example = 'Reply as {"snippets": ["a sentence"]}.'
    extract = phase_a_node().prompts.extract + " " + example
    backend = ScriptedBackend(lambda user: '{"snippets": []}')
    run_phase_a(questions[:1], backend, index, llm_config(prompts={"extract": extract}))
    users = [m["content"] for call in backend.calls for r in call for m in r.messages if m["role"] == "user"]
    extracts = [u for u in users if "extract relevant sentences" in u]
    assert extracts and all(u.endswith(example) and questions[0].body in u for u in extracts)


def _quotes_for(user: str) -> str:
    """Extraction replies: for the cystic fibrosis document, one quote of every kind the locator handles."""
    if "F508del, leads to misfolding" in user:
        return json.dumps(
            {
                "snippets": [
                    "Cystic fibrosis is an autosomal recessive disease caused by mutations in the CFTR gene "
                    "on chromosome 7.",
                    "cftr ENCODES a chloride channel expressed in epithelial cells",
                    "Thick mucus, chronic lung infection and pancreatic insufficiency come from defective "
                    "chloride transport.",
                    "Cystic fibrosis is cured by antibiotics in most children.",
                ]
            }
        )
    return '{"snippets": []}'


def test_llm_flow_broadens_then_falls_back_and_locates_quotes(index, questions, caplog):
    question = next(q for q in questions if "cystic fibrosis" in q.body)

    def reply(user: str) -> str | None:
        if "found no PubMed" in user:
            return "Query: zzunknownterm OR qqnothing"
        if "write an Elasticsearch query string" in user:
            return "```\nzzunknownterm AND qqnothing\n```"
        if "extract relevant sentences" in user:
            return _quotes_for(user)
        return "Sorry, I cannot rank these."  # unusable ranking

    backend = ScriptedBackend(reply)
    [answer], [trace], stats = triple(run_phase_a([question], backend, index, llm_config(max_broader_attempts=2)))
    assert [(t["source"], t["hits"] > 0) for t in trace["queries"]] == [
        ("llm", False),
        ("broader", False),
        ("broader", False),
        ("bag_of_words", True),
    ]
    assert trace["queries"][0]["query"] == "zzunknownterm AND qqnothing"
    extraction = trace["extraction"]
    assert extraction["located"] == {"exact": 1, "normalized": 1, "fuzzy": 1}
    assert extraction["dropped"] == 1 and extraction["dropped_quotes"] == [
        "Cystic fibrosis is cured by antibiotics in most children."
    ]
    # a drop is recorded in the run's stats (phase_a.extract.dropped in metrics.json) and said on stderr
    assert (stats["stages"]["extract"]["quotes"], stats["stages"]["extract"]["dropped"]) == (4, 1)
    assert "1 of 4 quotes are not in their document and were dropped (first: 'Cystic fibrosis is cured" in caplog.text
    assert trace["rerank"]["mode"] == "fallback"
    assert_official(answer)
    assert len(answer.snippets) == 3 and answer.documents[0].endswith("90000005")
    assert {s.text for s in answer.snippets} >= {"CFTR encodes a chloride channel expressed in epithelial cells"}
    few_shot_turns = backend.calls[0][0].messages
    assert [m["role"] for m in few_shot_turns][:3] == ["system", "user", "assistant"]
    assert all(r.json_schema is not None for call in backend.calls[3:] for r in call)  # extraction and ranking


def test_llm_ranking_orders_snippets_and_documents(index, questions):
    batch = [q for q in questions if "cystic fibrosis" in q.body or "statins" in q.body]

    def reply(user: str) -> str:
        if "write an Elasticsearch query string" in user:
            return '"cystic fibrosis" OR CFTR' if "cystic" in user else '"HMG-CoA reductase" OR statins'
        if "extract relevant sentences" in user:
            sentences = re.findall(r"[A-Z][^.]*\.", user.split("```", 1)[1])
            return json.dumps({"snippets": sentences[:2]})
        return '```json\n{"snippets": [2, 0, 99, "x"]}\n```'

    backend = ScriptedBackend(reply)
    answers, traces, _ = triple(run_phase_a(batch, backend, index, llm_config(extract_documents=3)))
    assert len(backend.calls) == 3  # query, extraction and ranking each batched over both questions
    for answer, trace in zip(answers, traces, strict=True):
        assert_official(answer)
        assert trace["rerank"] == {"mode": "llm", "candidates": trace["rerank"]["candidates"], "llm_ranked": 2}
        ranking_prompt = next(
            r.messages[-1]["content"] for r in backend.calls[2] if answer.body in r.messages[-1]["content"]
        )
        listed = json.loads(ranking_prompt.split("```")[1])
        assert [s.text for s in answer.snippets[:2]] == [listed[2]["text"], listed[0]["text"]]
        assert answer.documents[0] == answer.snippets[0].document


def test_each_stage_sends_all_questions_requests_concurrently_over_http(index, questions, json_server):
    """Through LiteLLM to a real loopback server: each stage's requests for all questions are in flight together
    (up to ``concurrency``), and every reply reaches its own question and document."""
    batch = questions[:4]

    def reply(user: str) -> str:
        if "write an Elasticsearch query string" in user:
            return bow_query(user.split("question: '", 1)[1].split("' write", 1)[0])
        if "extract relevant sentences" in user:
            return json.dumps({"snippets": re.findall(r"[A-Z][^.]*\.", user.split("```", 1)[1])[:2]})
        return '{"snippets": [1, 0]}'

    stages = {"query": "write an Elasticsearch", "extract": "extract relevant", "rerank": "select the top 10"}
    flights = {
        stage: InFlight(lambda path, body, headers: (200, chat(reply(body["messages"][-1]["content"]))), expected=3)
        for stage in stages
    }

    def respond(path: str, body: dict, headers) -> tuple:
        user = body["messages"][-1]["content"]
        return flights[next(s for s, marker in stages.items() if marker in user)](path, body, headers)

    api_base = f"{json_server(respond)}/v1"
    backend = LiteLLMBackend("openai/fixture", api_base=api_base, concurrency=3, timeout_s=10, context_window=8192)
    answers, traces, stats = triple(run_phase_a(batch, backend, index, llm_config(extract_documents=3)))
    assert {stage: flight.peak for stage, flight in flights.items()} == {"query": 3, "extract": 3, "rerank": 3}
    assert stats["model_errors"] == 0 and stats["model_calls"] == 4 + 12 + 4
    for q, answer, trace in zip(batch, answers, traces, strict=True):
        query = parse_query(bow_query(q.body))
        found = [pubmed_url(h.pmid) for h in index.search(query, 50)]
        assert found and trace["queries"] == [{"query": query, "source": "llm", "hits": len(found)}]
        assert answer.id == q.id and set(answer.documents) == set(found[:10])  # its own query's documents
        assert trace["extraction"]["documents"] == 3
        assert trace["rerank"]["mode"] == "llm" and trace["rerank"]["llm_ranked"] == 2
        assert_official(answer)


def test_backend_failures_degrade_to_retrieval_only_and_are_counted(index, questions, caplog):
    backend = ScriptedBackend(lambda user: None)
    answers, traces, stats = triple(run_phase_a(questions[:3], backend, index, llm_config(max_broader_attempts=1)))
    for answer, trace in zip(answers, traces, strict=True):
        assert [t["source"] for t in trace["queries"]] == ["llm", "broader", "bag_of_words"]
        assert answer.documents and answer.snippets == []
        assert trace["extraction"]["model_errors"] == trace["extraction"]["documents"] == 10
        assert trace["extraction"]["unparsable"] == 0
        assert trace["model_errors"] == {"query": 1, "broader": 1, "extract": 10}
    assert stats["model_calls"] == stats["model_errors"] == 3 + 3 + 30
    assert stats["stages"]["extract"]["first_error"] == "scripted failure"
    assert stats["stages"]["search"]["searches"] == 9
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("extract: 30 of 30 model calls failed" in w for w in warned)


def test_some_failed_calls_are_attributed_to_their_question(index, questions):
    """Only the second question's query call fails: only its trace and the query stage count it."""
    failing = questions[1].body

    def reply(user: str) -> str | None:
        if "write an Elasticsearch query string" in user:
            return None if failing in user else "statins"
        return '{"snippets": []}'

    _, traces, stats = triple(run_phase_a(questions[:3], ScriptedBackend(reply), index, llm_config()))
    assert [t.get("model_errors") for t in traces] == [None, {"query": 1}, None]
    assert stats["stages"]["query"]["model_errors"] == 1 and stats["stages"]["query"]["model_calls"] == 3
    assert all(stats["stages"][s]["wall_s"] >= 0 for s in ("query", "search", "extract"))


def test_llm_flow_runs_on_a_tiny_random_transformers_model(index, questions, tokenizer_dir):
    hf = pytest.importorskip("bioqa.models.hf")

    backend = hf.HFBackend.from_random_config(tokenizer_dir, seed=0, batch_size=8)
    config = llm_config(extract_documents=2, query_max_tokens=12, extract_max_tokens=48, rerank_max_tokens=16)
    answers, traces, _ = triple(run_phase_a(questions[:3], backend, index, config))
    for answer, trace in zip(answers, traces, strict=True):
        assert_official(answer)
        assert answer.documents and trace["queries"][-1]["hits"] > 0
        assert trace["extraction"]["documents"] == 2 and "rerank" in trace
        assert len(trace["queries"]) <= 1 + config.max_broader_attempts + 1
        json.dumps(trace)  # traces go to the run's per-question JSONL


def test_llm_strategy_needs_a_backend(index, questions):
    with pytest.raises(ValueError, match="needs a model backend"):
        run_phase_a(questions, None, index, llm_config())


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ('```\n"a b" AND c\n```', '"a b" AND c'),
        ('{"query": "x OR y"}', "x OR y"),
        ("Query: statins AND LDL\nThis query finds...", "statins AND LDL"),
        ("Here is a broader query string:\n\n(statins OR HMG) AND LDL\nIt finds more.", "(statins OR HMG) AND LDL"),
        ("statins LDL\nmore text", "statins LDL"),
        ("", ""),
    ],
)
def test_query_parsing(text, query):
    assert parse_query(text) == query


def test_list_parsing():
    assert parse_list('Here: {"snippets": ["a", "b"]} done') == ["a", "b"]
    assert parse_list("[3, 1]") == [3, 1]
    assert parse_list('{"other": 1}') is None and parse_list("no json") is None


@pytest.fixture(scope="module")
def shared_index(shared_dir, tmp_path_factory) -> TantivyIndex:
    """The shared corpus (every document relevant to some question of 7B-11B) in a tantivy index."""
    corpus_path = shared_dir / "corpus" / "pubmed_snippets_7B-11B.jsonl"
    return TantivyIndex(corpus_path, tmp_path_factory.mktemp("shared-index"), show_progress=False)


@pytest.mark.slow
def test_baseline_on_a_real_batch_scores_well_above_zero(shared_dir, shared_index):
    golden_path = shared_dir / "golden" / "11B3_golden.json"
    corpus_path = shared_dir / "corpus" / "pubmed_snippets_7B-11B.jsonl"
    index = shared_index
    questions = load_questions(golden_path)
    answers, _, _ = triple(run_phase_a(questions, None, index, PhaseAConfig(strategy="bm25")))
    corpus = {d["pmid"]: d for d in read_corpus(corpus_path)}
    recall = []
    for q, a in zip(questions, answers, strict=True):
        assert_official(a, corpus)
        golden = {pmid_of(d) for d in q.documents}
        recall.append(len(golden & {pmid_of(d) for d in a.documents}) / len(golden))
    assert sum(recall) / len(recall) > 0.4
    evaluation = pytest.importorskip("bioqa.evaluation.api")
    report = evaluation.evaluate_submission(
        golden_path, {"questions": [submission_entry(a) for a in answers]}, phase="A", rouge=False, bootstrap=0
    )
    assert report.metrics["documents.MRec"] == pytest.approx(sum(recall) / len(recall))
    assert report.metrics["documents.MAP"] > 0.3 and report.metrics["snippets.MF1"] > 0.2


# ----------------------------------------------------------------------------- stage oracles


def _measures(answers, tmp_path) -> dict[str, float]:
    from bioqa.evaluation.api import evaluate_submission

    submission = {"questions": [submission_entry(a) for a in answers]}
    report = evaluate_submission(demo_golden_path(), submission, phase="A", rouge=False, bootstrap=0)
    return {k: v for k, v in report.metrics.items() if k.startswith(("documents.", "snippets.")) and "GMAP" not in k}


def test_all_oracle_stages_need_no_model_and_reach_the_ceiling(index, questions, tmp_path):
    """On the demo batch every golden snippet is a sentence of its document: the pipeline's ceiling is perfect."""
    config = llm_config(oracle_stages=["query", "extract", "rerank"])
    answers, traces, stats = triple(run_phase_a(questions, None, index, config))
    assert set(_measures(answers, tmp_path).values()) == {1.0}
    assert stats["oracle_stages"] == ["query", "extract", "rerank"] and stats["model_calls"] == 0
    for answer, trace in zip(answers, traces, strict=True):
        assert_official(answer)
        assert trace["oracle_stages"] == ["query", "extract", "rerank"]
        assert trace["queries"] == [{"query": None, "source": "oracle", "hits": len(answer.documents)}]
        assert trace["rerank"]["mode"] == "oracle" and trace["extraction"]["dropped"] == 0


@pytest.mark.parametrize(
    ("oracle", "model_stages"),
    [
        (["extract", "rerank"], {"query"}),
        (["query", "rerank"], {"extract"}),
        (["query", "extract"], {"rerank"}),
        (["query"], {"extract", "rerank"}),
    ],
)
def test_only_the_other_stages_ask_the_model(oracle, model_stages, index, questions):
    asked = set()

    def reply(user: str) -> str:
        if "write an Elasticsearch query string" in user:
            asked.add("query")
            return "statins OR cystic"
        if "extract relevant sentences" in user:
            asked.add("extract")
            return json.dumps({"snippets": re.findall(r"[A-Z][^.]*\.", user.split("```", 1)[1])[:1]})
        asked.add("rerank")
        return '{"snippets": [0]}'

    backend = ScriptedBackend(reply)
    _, traces, stats = triple(run_phase_a(questions[:3], backend, index, llm_config(oracle_stages=oracle)))
    assert asked == model_stages
    assert sorted(stats["oracle_stages"]) == sorted(oracle)
    assert all(sorted(t["oracle_stages"]) == sorted(oracle) for t in traces if t.get("snippets"))


@pytest.mark.parametrize(
    ("config", "backend", "golden", "message"),
    [
        ({"oracle_stages": ["search"]}, None, True, "['search'] are not stages; choose from ['query', 'extract', "),
        ({"oracle_stages": ["query"], "strategy": "bm25"}, None, True, "they need strategy 'llm'"),
        ({"oracle_stages": ["query", "extract"]}, None, True, "needs a model backend"),
        ({"oracle_stages": ["query", "extract", "rerank"]}, None, False, "need golden documents: 3 of 3 questions"),
    ],
)
def test_oracle_misuse_is_one_clear_error(config, backend, golden, message, index, questions):
    from dataclasses import replace

    batch = questions[:3] if golden else [replace(q, documents=[], snippets=[]) for q in questions[:3]]
    node = phase_a_node()
    node.merge_with(config)
    with pytest.raises(ValueError, match=re.escape(message)):
        settings = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if not k.startswith("_")}
        run_phase_a(batch, backend, index, PhaseAConfig(**settings))


@pytest.mark.slow
def test_the_ceiling_on_a_real_batch_is_explained(shared_dir, shared_index):
    """11B3 over the shared corpus: the all-oracle run loses only what the 10-item limits and alignment lose."""
    golden_path = shared_dir / "golden" / "11B3_golden.json"
    questions = load_questions(golden_path)
    config = llm_config(oracle_stages=["query", "extract", "rerank"], show_progress=False)
    answers, traces, _ = triple(run_phase_a(questions, None, shared_index, config))
    from bioqa.evaluation.api import evaluate_submission

    submission = {"questions": [submission_entry(a) for a in answers]}
    metrics = evaluate_submission(golden_path, submission, phase="A", rouge=False, bootstrap=0).metrics
    # documents: perfect, except what the 10-document limit costs questions with more golden documents
    capped = [min(len(set(q.documents)), 10) / len(set(q.documents)) for q in questions]
    assert metrics["documents.MAP"] == 1.0
    assert metrics["documents.MF1"] == pytest.approx(sum(2 * r / (1 + r) for r in capped) / len(capped), abs=1e-12)
    # snippets: every golden quote is placed (none dropped); the 10-snippet limit and trailing spaces cost the rest
    assert sum(t["extraction"]["dropped"] for t in traces) == 0 and metrics["snippets.MAP"] > 0.93
