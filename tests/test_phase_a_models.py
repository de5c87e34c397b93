"""Phase A's wiring through infer: a model per stage (retrieval.phase_a_models: each stage's requests go to its own
model, broader queries to the query model, the others to the run's model; the run identity records every stage model),
and the Wikipedia-grounded query reading the run's Wikipedia context."""

from __future__ import annotations

import json

from test_query_pool import PAPER, backends, reply  # noqa: F401 (the fixture)
from test_run_identity import run

from bioqa.models import Completion
from bioqa.retrieval.wikipedia import WikiArticle, WikipediaContext
from bioqa.rundir import IDENTITY


def test_each_stage_asks_its_own_model_and_the_identity_records_it(tmp_path, backends):  # noqa: F811
    run(tmp_path, *PAPER, "+model@retrieval.phase_a_models.extract=gpt-3.5-turbo")
    main, extract = backends.built
    assert (main.model_id, extract.model_id) == ("scripted:tiny-llama-random", "scripted:gpt-3.5-turbo-0125")
    assert extract.requests and all("extract relevant sentences" in r.messages[-1]["content"] for r in extract.requests)
    asked = [r.messages[-1]["content"] for r in main.requests]
    assert asked and not any("extract relevant sentences" in text for text in asked)
    assert any("wrap the final query in ## tags" in text for text in asked)
    identity = json.loads((tmp_path / "run" / IDENTITY).read_text())["identity"]
    assert identity["retrieval"]["phase_a_backends"] == {
        "extract": {"kind": "scripted", "model_id": "scripted:gpt-3.5-turbo-0125"}
    }
    assert identity["backend"]["model_id"] == "scripted:tiny-llama-random"


def test_the_wikipedia_grounded_query_reads_the_runs_wikipedia_context(tmp_path, backends, monkeypatch):  # noqa: F811
    monkeypatch.setattr(
        WikipediaContext, "fetch", lambda self, title: WikiArticle(title, "https://w/Marker", "WIKI-MARKER text.")
    )
    titles = '{"articles": ["Marker article"]}'
    backends.reply = lambda r: (
        Completion(text=titles) if "Wikipedia articles" in r.messages[-1]["content"] else reply(r)
    )
    overrides = ["retrieval.phase_a.query_source=more_like_this", "retrieval.wikipedia.max_articles=1"]
    run(tmp_path, *PAPER, *overrides)
    asked = [r.messages[-1]["content"] for r in backends.built[0].requests]
    grounded = [text for text in asked if "Think step by step and write an exhaustive answer" in text]
    assert len(grounded) == 4 and all("Wikipedia, Marker article: WIKI-MARKER text." in t for t in grounded)
    traces = json.loads((tmp_path / "run" / "phase_a_traces.json").read_text())
    assert all(t["queries"][0]["source"] == "more_like_this" for t in traces)
