"""Wikipedia context through wikipedia-api with an injected httpx transport (a canned MediaWiki API; no network)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import httpx
import pytest

from bioqa.errors import ConfigError, describe, error_boundary
from bioqa.models import Backend, ChatRequest, Completion
from bioqa.retrieval.wikipedia import WikipediaContext, main, parse_titles, prefetch
from bioqa.retrieval.wikipedia_cache import WikipediaCache, normalise_title

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


class ScriptedBackend(Backend):
    """A test double that replies with fixed strings chosen by the prompt (drives the control flow only)."""

    kind = "scripted"

    def __init__(self, replies: dict[str, str]):
        self.replies, self.requests = replies, []

    @property
    def model_id(self) -> str:
        return "scripted"

    @property
    def context_window(self) -> int:
        return 4096

    def count_tokens(self, messages) -> int:
        return sum(len(m["content"]) for m in messages) // 4

    def stream(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, Completion]]:
        self.requests.extend(requests)
        for index, r in enumerate(requests):
            user = r.messages[-1]["content"]
            yield index, Completion(text=next((v for k, v in self.replies.items() if k in user), ""))


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


# ----------------------------------------------------------------------------- the persistent cache


class Counting:
    """The canned MediaWiki API, counting requests; ``fail=True`` answers 503 (an outage)."""

    def __init__(self, fail: bool = False):
        self.requests, self.fail = 0, fail

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return httpx.Response(503) if self.fail else mediawiki(request)


def cached_context(api: Counting, path, **kwargs) -> WikipediaContext:
    return WikipediaContext(
        prompts=PROMPTS, transport=httpx.MockTransport(api), max_retries=0, cache_path=path, **kwargs
    )


def test_pages_redirects_and_misses_persist_across_runs(tmp_path):
    path = tmp_path / "wiki.sqlite"
    api = Counting()
    first = cached_context(api, path, max_articles=3)
    assert first.fetch("Acetylsalicylic acid").title == "Aspirin"
    assert first.fetch("No such page") is None
    assert api.requests == 2
    outage = Counting(fail=True)
    later = cached_context(outage, path, max_articles=3)  # a new run: everything comes from the SQLite file
    assert later.fetch("acetylsalicylic_acid").text == ARTICLES["Aspirin"]  # normalised key
    assert later.fetch("Aspirin").url == "https://en.wikipedia.org/wiki/Aspirin"  # the redirect target too
    assert later.fetch("No such page") is None and later.counts["misses"] == 1
    assert outage.requests == 0 and later.counts["cache_hits"] == 3
    assert WikipediaCache(path).counts("en") == {"pages": 3, "missing": 1, "redirects": 1, "wanted": 0}
    assert WikipediaCache(path).get("de", "Aspirin") is None  # keyed by language


def test_outages_are_not_cached(tmp_path):
    path = tmp_path / "wiki.sqlite"
    assert cached_context(Counting(fail=True), path, max_articles=1).fetch("Aspirin") is None
    api = Counting()
    assert cached_context(api, path, max_articles=1).fetch("Aspirin").title == "Aspirin" and api.requests == 1


def test_offline_uses_the_cache_only_and_lists_what_it_lacks(tmp_path, caplog):
    path = tmp_path / "wiki.sqlite"
    WikipediaCache(path).put("en", "Reye syndrome", "Reye syndrome", ARTICLES["Reye syndrome"])
    api = Counting()
    offline = cached_context(api, path, max_articles=3, offline=True)
    backend = ScriptedBackend({"Reye": json.dumps({"articles": ["Reye syndrome", "Aspirin", "Influenza"]})})
    [articles] = offline.context_for(["Why is aspirin avoided in children? (Reye)"], backend)
    assert [a.title for a in articles] == ["Reye syndrome"] and api.requests == 0
    assert offline.missing == ["Aspirin", "Influenza"]
    assert WikipediaCache(path).wanted("en") == ["Aspirin", "Influenza"]
    assert any("2 titles not in the cache" in r.getMessage() and "Influenza" in r.getMessage() for r in caplog.records)
    online = cached_context(api, path, max_articles=3)
    counts = prefetch(online, WikipediaCache(path).wanted("en"), show_progress=False)
    assert api.requests == 2 and counts["wanted"] == 0 and counts["missing"] == 1  # Influenza does not exist
    [again] = cached_context(Counting(fail=True), path, max_articles=3, offline=True).context_for(
        ["Why is aspirin avoided in children? (Reye)"], backend
    )
    assert [a.title for a in again] == ["Reye syndrome", "Aspirin"]


@pytest.mark.parametrize(
    ("setup", "kwargs", "message"),
    [
        ("none", {"offline": True}, "no Wikipedia cache here"),
        ("dir", {}, "is a directory"),
        ("garbage", {}, "not a Wikipedia cache"),
        ("none", {"offline": True, "cache_path": None}, "needs retrieval.wikipedia.cache_path"),
    ],
)
def test_bad_caches_are_one_clear_error(setup, kwargs, message, tmp_path):
    path = tmp_path / "wiki.sqlite"
    if setup == "dir":
        path.mkdir()
    elif setup == "garbage":
        path.write_bytes(b"\x00not sqlite at all" * 100)
    with pytest.raises((ConfigError, IsADirectoryError)) as info:
        context = cached_context(Counting(), kwargs.pop("cache_path", path), max_articles=2, **kwargs)
        context.fetch("Aspirin")
    assert message in (describe(info.value) or "")


@pytest.mark.parametrize(
    ("title", "key"),
    [("aspirin", "Aspirin"), ("Reye_syndrome", "Reye syndrome"), ("  Reye   syndrome ", "Reye syndrome"), ("", "")],
)
def test_titles_are_normalised_like_mediawiki(title, key):
    assert normalise_title(title) == key


def test_prefetch_command_needs_something_to_fetch(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        error_boundary(main)(["--cache", str(tmp_path / "w.sqlite")])
    assert info.value.code == 2 and "give --titles FILE and/or --wanted" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        error_boundary(main)(["--cache", str(tmp_path / "w.sqlite"), "--titles", str(tmp_path / "absent.txt")])
    assert "absent.txt: no such file or directory" in capsys.readouterr().err
