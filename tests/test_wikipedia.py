"""Wikipedia context through wikipedia-api with an injected httpx transport (a canned MediaWiki API; no network)."""

from __future__ import annotations

import json

import httpx
import pytest
from helpers import ScriptedBackend

from bioqa.retrieval.wikipedia import WikipediaContext, parse_titles

PROMPTS = {
    "system": "You are a biomedical expert.",
    "titles": "Name up to {k} Wikipedia articles for: {question}",
    "summary": "Summarise '{title}' for '{question}': {text}",
}
ARTICLES = {
    "Aspirin": "Aspirin is a nonsteroidal anti-inflammatory drug that irreversibly inhibits cyclooxygenase.",
    "Reye syndrome": "Reye syndrome is a rapidly progressive encephalopathy linked to aspirin use in children.",
}
REDIRECTS = {"Acetylsalicylic acid": "Aspirin"}


def mediawiki(request: httpx.Request) -> httpx.Response:
    """Answers ``action=query&prop=extracts`` like the MediaWiki API (missing pages get id -1)."""
    params = request.url.params
    assert request.url.host == "en.wikipedia.org" and params["action"] == "query" and params["prop"] == "extracts"
    assert params["exintro"] == "1" and "bioqa" in request.headers["User-Agent"]
    title = params["titles"]
    query: dict = {}
    if params.get("redirects") and title in REDIRECTS:
        query["redirects"] = [{"from": title, "to": REDIRECTS[title]}]
        title = REDIRECTS[title]
    if title in ARTICLES:
        page_id = str(100 + sorted(ARTICLES).index(title))
        query["pages"] = {page_id: {"pageid": int(page_id), "ns": 0, "title": title, "extract": ARTICLES[title]}}
    else:
        query["pages"] = {"-1": {"ns": 0, "title": title, "missing": ""}}
    return httpx.Response(200, json={"batchcomplete": "", "query": query})


def context(**kwargs) -> WikipediaContext:
    return WikipediaContext(prompts=PROMPTS, transport=httpx.MockTransport(mediawiki), max_retries=0, **kwargs)


def test_named_articles_are_fetched_and_missing_ones_skipped():
    backend = ScriptedBackend(
        {"Reye": json.dumps({"articles": ["Acetylsalicylic acid", "No such page", "Reye syndrome"]})}
    )
    [articles] = context(max_articles=3).context_for(["Why is aspirin avoided in children? (Reye)"], backend)
    assert [a.title for a in articles] == ["Aspirin", "Reye syndrome"]
    assert articles[0].text == ARTICLES["Aspirin"]
    assert articles[0].url == "https://en.wikipedia.org/wiki/Aspirin"
    assert articles[1].as_context().startswith("Wikipedia, Reye syndrome: Reye syndrome is")
    assert backend.requests[0].json_schema is not None


def test_summaries_come_from_the_model_and_texts_are_capped():
    backend = ScriptedBackend({"Name up to": '["Aspirin"]', "Summarise 'Aspirin'": "Aspirin blocks COX enzymes."})
    [[article]] = context(max_articles=2, summarise=True).context_for(["How does aspirin work?"], backend)
    assert article.text == "Aspirin blocks COX enzymes."
    [[short]] = context(max_articles=1, max_chars=20).context_for(["How does aspirin work?"], backend)
    assert short.text == ARTICLES["Aspirin"][:20]


def test_disabled_context_makes_no_calls():
    backend = ScriptedBackend({})
    assert context(max_articles=0).context_for(["q1", "q2"], backend) == [[], []]
    assert backend.requests == []


def test_http_failures_are_skipped_not_raised():
    failing = WikipediaContext(
        prompts=PROMPTS, max_retries=0, transport=httpx.MockTransport(lambda r: httpx.Response(503))
    )
    assert failing.fetch("Aspirin") is None


@pytest.mark.parametrize(
    ("text", "titles"),
    [
        ('{"articles": ["Aspirin", "Aspirin", "Reye syndrome"]}', ["Aspirin", "Reye syndrome"]),
        ("1. Aspirin\n2. Reye syndrome\n- Influenza", ["Aspirin", "Reye syndrome"]),
        ("", []),
    ],
)
def test_titles_are_parsed_from_json_or_lines(text, titles):
    assert parse_titles(text, limit=2) == titles


def test_missing_prompts_are_a_clear_error():
    with pytest.raises(ValueError, match="titles"):
        WikipediaContext(prompts={"system": "x"}, max_articles=2)
