"""Wikipedia context through bioqa's MediaWiki client, against a real loopback HTTP server that answers like the
MediaWiki Action API (``formatversion=2`` replies; no network)."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

import pytest
from helpers import ScriptedBackend

from bioqa.errors import ConfigError, describe, error_boundary
from bioqa.retrieval import mediawiki
from bioqa.retrieval.mediawiki import MediaWikiClient, MediaWikiError
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


class MediaWiki:
    """A loopback server's responder answering ``action=query&prop=extracts`` as the MediaWiki API does (a missing
    page: ``missing: true``); ``fail`` replaces every answer (an outage, a broken proxy, a rate limit)."""

    def __init__(self, fail: tuple | None = None):
        self.queries: list[dict[str, str]] = []
        self.agents: list[str] = []
        self.fail = fail

    def __call__(self, path: str, body, headers):
        self.queries.append(dict(parse_qsl(urlsplit(path).query)))
        self.agents.append(headers.get("User-Agent", ""))
        if self.fail is not None:
            if self.fail[0] == "sleep":
                time.sleep(self.fail[1])
                return 200, {}
            return self.fail
        title = self.queries[-1]["titles"]
        query: dict = {}
        if title in REDIRECTS:
            query["redirects"] = [{"from": title, "to": REDIRECTS[title]}]
            title = REDIRECTS[title]
        if title in ARTICLES:
            page_id = 100 + sorted(ARTICLES).index(title)
            query["pages"] = [{"pageid": page_id, "ns": 0, "title": title, "extract": ARTICLES[title]}]
        else:
            query["pages"] = [{"ns": 0, "title": title, "missing": True}]
        return 200, {"batchcomplete": True, "query": query}


@pytest.fixture
def wiki(json_server):
    """``wiki(api=None, **kwargs)``: a WikipediaContext on a new loopback MediaWiki (``api`` its responder)."""

    def make(api: MediaWiki | None = None, **kwargs) -> WikipediaContext:
        url = json_server(api or MediaWiki()) + "/w/api.php"
        kwargs.setdefault("max_retries", 0)
        return WikipediaContext(prompts=PROMPTS, api_url=url, **kwargs)

    return make


def test_named_articles_are_fetched_and_missing_ones_skipped(wiki):
    api = MediaWiki()
    backend = ScriptedBackend(
        {"Reye": json.dumps({"articles": ["Acetylsalicylic acid", "No such page", "Reye syndrome"]})}
    )
    [articles] = wiki(api, max_articles=3).context_for(["Why is aspirin avoided in children? (Reye)"], backend)
    assert [a.title for a in articles] == ["Aspirin", "Reye syndrome"]
    assert articles[0].text == ARTICLES["Aspirin"]
    assert articles[0].url == "https://en.wikipedia.org/wiki/Aspirin"
    assert articles[1].as_context().startswith("Wikipedia, Reye syndrome: Reye syndrome is")
    assert backend.requests[0].json_schema["properties"]["articles"]["maxItems"] == 3  # a bounded list closes in time
    assert api.queries[0] == {
        "action": "query",
        "format": "json",
        "formatversion": "2",
        "prop": "extracts",
        "exintro": "1",
        "explaintext": "1",
        "redirects": "1",
        "titles": "Acetylsalicylic acid",
    }
    assert all("bioqa" in agent for agent in api.agents)


def test_summaries_come_from_the_model_and_texts_are_capped(wiki):
    backend = ScriptedBackend({"Name up to": '["Aspirin"]', "Summarise 'Aspirin'": "Aspirin blocks COX enzymes."})
    [[article]] = wiki(max_articles=2, summarise=True).context_for(["How does aspirin work?"], backend)
    assert article.text == "Aspirin blocks COX enzymes."
    [[short]] = wiki(max_articles=1, max_chars=20).context_for(["How does aspirin work?"], backend)
    assert short.text == ARTICLES["Aspirin"][:20]


def test_disabled_context_makes_no_calls(wiki):
    backend, api = ScriptedBackend({}), MediaWiki()
    assert wiki(api, max_articles=0).context_for(["q1", "q2"], backend) == [[], []]
    assert backend.requests == [] and api.queries == []


#: What a server can do wrong, and the one line bioqa makes of it (the fetch is skipped, counted, never cached).
FAILURES = [
    ((503, {}), "HTTP 503"),
    ((500, b"<html>Internal error</html>"), "HTTP 500"),
    ((401, {"error": "unauthorised"}), "HTTP 401"),
    ((403, b""), "HTTP 403"),
    ((429, {}, {"Retry-After": "3600"}), "HTTP 429"),
    ((200, b""), "the reply is not JSON (0 bytes)"),
    ((200, b'{"batchcomplete": true, "query": {"pages": [{"pageid"'), "the reply is not JSON"),
    ((200, b"null"), "a reply without query.pages"),
    ((200, {}), "a reply without query.pages"),
    ((200, {"query": {"pages": []}}), "a reply without query.pages"),
    ((200, {"query": {"pages": [{"title": "Aspirin", "pageid": 1}]}}), "came without its extract"),
    ((200, {"error": {"code": "ratelimited", "info": "slow down"}}), "API error ratelimited: slow down"),
    ((200, b"\xff\xfe not utf-8"), "the reply is not JSON"),
    (("sleep", 2.0), "ReadTimeout"),
]


@pytest.mark.parametrize(("fail", "message"), FAILURES, ids=[m for _, m in FAILURES])
def test_server_failures_are_one_line_skipped_and_never_cached(fail, message, wiki, tmp_path, caplog):
    api = MediaWiki(fail=fail)
    failing = wiki(api, timeout_s=0.5, cache_path=tmp_path / "wiki.sqlite")
    assert failing.fetch("Aspirin") is None
    assert failing.counts["unreachable"] == 1 and failing.counts["fetched"] == 0
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert message in warning and "\n" not in warning and warning.startswith("wikipedia: could not fetch 'Aspirin'")
    assert WikipediaCache(tmp_path / "wiki.sqlite").counts("en")["pages"] == 0


def test_rate_limits_are_retried_after_the_wait_the_server_asks(json_server):
    replies = iter([(429, {}, {"Retry-After": "0"}), (503, {}, {"Retry-After": "0"})])
    ok = MediaWiki()

    def respond(path, body, headers):
        return next(replies, None) or ok(path, body, headers)

    client = MediaWikiClient(json_server(respond) + "/w/api.php", max_retries=2)
    assert client.introduction("Aspirin") == ("Aspirin", ARTICLES["Aspirin"])
    with pytest.raises(MediaWikiError, match="HTTP 429"):  # out of retries
        MediaWikiClient(json_server(MediaWiki(fail=(429, {}, {"Retry-After": "0"}))), max_retries=1).introduction("x")


@pytest.mark.parametrize(("retry_after", "slept"), [("30", [30.0]), ("30.5", []), ("3600", [])])
def test_a_wait_longer_than_30_s_is_not_waited_for(retry_after, slept, json_server, monkeypatch):
    """A server asking for more than MAX_RETRY_AFTER_S (30 s) fails the fetch at once instead of stalling the run."""
    waits: list[float] = []
    monkeypatch.setattr(mediawiki, "time", SimpleNamespace(sleep=waits.append))
    client = MediaWikiClient(json_server(MediaWiki(fail=(429, {}, {"Retry-After": retry_after}))), max_retries=1)
    with pytest.raises(MediaWikiError, match="HTTP 429"):
        client.introduction("x")
    assert waits == slept


def test_an_unreachable_server_is_one_line(caplog):
    context = WikipediaContext(prompts=PROMPTS, api_url="http://127.0.0.1:9/w/api.php", max_retries=0)
    assert context.fetch("Aspirin") is None and context.counts["unreachable"] == 1
    assert "ConnectError" in caplog.records[-1].getMessage()


def test_the_api_url_takes_the_language(json_server):
    api = MediaWiki()
    base = json_server(api)
    client = MediaWikiClient(base + "/{language}/w/api.php", language="de")
    assert client.api_url == base + "/de/w/api.php" and client.introduction("Aspirin")[0] == "Aspirin"


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


OUTAGE = (503, {})


def test_pages_redirects_and_misses_persist_across_runs(tmp_path, wiki):
    path = tmp_path / "wiki.sqlite"
    api = MediaWiki()
    first = wiki(api, cache_path=path, max_articles=3)
    assert first.fetch("Acetylsalicylic acid").title == "Aspirin"
    assert first.fetch("No such page") is None
    assert len(api.queries) == 2
    outage = MediaWiki(fail=OUTAGE)
    later = wiki(outage, cache_path=path, max_articles=3)  # a new run: everything comes from the SQLite file
    assert later.fetch("acetylsalicylic_acid").text == ARTICLES["Aspirin"]  # normalised key
    assert later.fetch("Aspirin").url == "https://en.wikipedia.org/wiki/Aspirin"  # the redirect target too
    assert later.fetch("No such page") is None and later.counts["misses"] == 1
    assert len(outage.queries) == 0 and later.counts["cache_hits"] == 3
    assert WikipediaCache(path).counts("en") == {"pages": 3, "missing": 1, "redirects": 1, "wanted": 0}
    assert WikipediaCache(path).get("de", "Aspirin") is None  # keyed by language


def test_outages_are_not_cached(tmp_path, wiki):
    path = tmp_path / "wiki.sqlite"
    assert wiki(MediaWiki(fail=OUTAGE), cache_path=path, max_articles=1).fetch("Aspirin") is None
    api = MediaWiki()
    assert wiki(api, cache_path=path, max_articles=1).fetch("Aspirin").title == "Aspirin" and len(api.queries) == 1


def test_offline_uses_the_cache_only_and_lists_what_it_lacks(tmp_path, caplog, wiki):
    path = tmp_path / "wiki.sqlite"
    WikipediaCache(path).put("en", "Reye syndrome", "Reye syndrome", ARTICLES["Reye syndrome"])
    api = MediaWiki()
    offline = wiki(api, cache_path=path, max_articles=3, offline=True)
    backend = ScriptedBackend({"Reye": json.dumps({"articles": ["Reye syndrome", "Aspirin", "Influenza"]})})
    [articles] = offline.context_for(["Why is aspirin avoided in children? (Reye)"], backend)
    assert [a.title for a in articles] == ["Reye syndrome"] and len(api.queries) == 0
    assert offline.missing == ["Aspirin", "Influenza"]
    assert WikipediaCache(path).wanted("en") == ["Aspirin", "Influenza"]
    assert any("2 titles not in the cache" in r.getMessage() and "Influenza" in r.getMessage() for r in caplog.records)
    online = wiki(api, cache_path=path, max_articles=3)
    counts = prefetch(online, WikipediaCache(path).wanted("en"), show_progress=False)
    assert len(api.queries) == 2 and counts["wanted"] == 0 and counts["missing"] == 1  # Influenza does not exist
    [again] = wiki(MediaWiki(fail=OUTAGE), cache_path=path, max_articles=3, offline=True).context_for(
        ["Why is aspirin avoided in children? (Reye)"], backend
    )
    assert [a.title for a in again] == ["Reye syndrome", "Aspirin"]


@pytest.mark.parametrize(
    ("setup", "kwargs", "message"),
    [
        ("none", {"offline": True}, "no Wikipedia cache here"),
        ("dir", {}, "is a directory"),
        ("garbage", {}, "not a Wikipedia cache"),
        ("none", {"offline": True, "cache_path": None}, "offline=True needs a cache_path"),
    ],
)
def test_bad_caches_are_one_clear_error(setup, kwargs, message, tmp_path, wiki):
    path = tmp_path / "wiki.sqlite"
    if setup == "dir":
        path.mkdir()
    elif setup == "garbage":
        path.write_bytes(b"\x00not sqlite at all" * 100)
    with pytest.raises((ConfigError, IsADirectoryError)) as info:
        context = wiki(MediaWiki(), cache_path=kwargs.pop("cache_path", path), max_articles=2, **kwargs)
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


#: ``python -m bioqa.retrieval.wikipedia ARGS`` on bad inputs: exit code and the one stderr line. ``{tmp}``: a folder
#: holding titles.txt, empty.txt, latin1.txt (not UTF-8) and junk.sqlite (not SQLite); ``{api}``: a loopback
#: MediaWiki answering every request with the row's failure (an OK wiki when none).
PREFETCH_BAD = [
    ("--cache {tmp}/w.sqlite --titles {tmp}/empty.txt", None, 2, "--titles {tmp}/empty.txt: no title in this file"),
    ("--cache {tmp}/w.sqlite --titles {tmp}/latin1.txt", None, 2, "--titles {tmp}/latin1.txt: not UTF-8 text (invalid"),
    ("--cache {tmp}/w.sqlite --titles {tmp}", None, 2, "{tmp}: is a directory, expected a file"),
    ("--cache {tmp} --titles {tmp}/titles.txt", None, 2, "{tmp}: is a directory, expected a file"),
    ("--cache {tmp}/junk.sqlite --titles {tmp}/titles.txt", None, 2, "junk.sqlite: not a Wikipedia cache"),
    ("--cache {tmp}/w.sqlite --titles {tmp}/titles.txt --api-url en.wikipedia.org", None, 2,
     "api_url='en.wikipedia.org': expected an http:// or https:// URL of a MediaWiki Action API"),
    ("--cache {tmp}/w.sqlite --titles {tmp}/titles.txt --api-url {api}", (401, {}), 3,
     "2 of 2 titles could not be fetched (not cached; run the command again to fetch them); the last failure: "
     "{api}: HTTP 401"),
    ("--cache {tmp}/w.sqlite --titles {tmp}/titles.txt --api-url {api}", (200, b"null"), 3,
     "the last failure: {api}: a reply without query.pages for"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "fail", "code", "line"), PREFETCH_BAD, ids=[f"{r[0]} {r[1]}" for r in PREFETCH_BAD])
def test_prefetch_command_bad_inputs_end_in_one_line(args, fail, code, line, json_server, tmp_path, capsys):
    (tmp_path / "titles.txt").write_text("Aspirin\nReye syndrome\n")
    (tmp_path / "empty.txt").write_text("\n \n")
    (tmp_path / "latin1.txt").write_bytes("Aspirin\nSj\xf6gren syndrome\n".encode("latin-1"))
    (tmp_path / "junk.sqlite").write_text("not a database")
    api = json_server(MediaWiki(fail=fail)) + "/w/api.php"
    with pytest.raises(SystemExit) as info:
        error_boundary(main)([*args.format(tmp=tmp_path, api=api).split(), "--no-progress"])
    # stderr: the error line, after the per-title warnings wherever another test left logging writing to stderr
    errors = [x for x in capsys.readouterr().err.splitlines() if ": error: " in x]
    assert info.value.code == code and len(errors) == 1 and line.format(tmp=tmp_path, api=api) in errors[0], errors


@pytest.mark.parametrize(
    ("fail", "code", "err"),
    [(None, None, ""), (OUTAGE, 3, "2 of 2 titles could not be fetched (not cached; run the command again")],
)
def test_prefetch_command_exits_non_zero_when_fetches_failed(fail, code, err, json_server, tmp_path, capsys):
    titles = tmp_path / "titles.txt"
    titles.write_text("Aspirin\nReye syndrome\nAspirin\n")
    argv = ["--cache", str(tmp_path / "w.sqlite"), "--titles", str(titles), "--no-progress"]
    argv += ["--api-url", json_server(MediaWiki(fail=fail)) + "/w/api.php"]
    if code is None:
        assert error_boundary(main)(argv)["pages"] == 2
    else:
        with pytest.raises(SystemExit) as info:
            error_boundary(main)(argv)
        assert info.value.code == code
    out, stderr = capsys.readouterr()
    assert err in stderr and "unreachable=" in out


def test_failed_model_calls_are_counted_and_said_in_one_line(wiki, caplog):
    backend = ScriptedBackend(lambda user: None if "fail" in user else '["Aspirin"]')
    context = wiki(max_articles=2, summarise=True)
    found = context.context_for(["first fail", "second", "third fail"], backend)
    assert [[a.title for a in f] for f in found] == [[], ["Aspirin"], []]
    assert context.calls == {"titles.calls": 3, "titles.failed": 2, "titles.failed_other": 2, "summary.calls": 1,
                             "summary.failed": 0}  # fmt: skip
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert line == "wikipedia: 2 of 3 titles requests failed (other ×2): questions without Wikipedia context"
