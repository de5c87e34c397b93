# ruff: noqa: E501, W291, W293
# (the paper's prompts are quoted as its notebooks wrote them: one line a paragraph, trailing spaces kept)
"""retrieval.wikipedia.style=paper: the title and summary requests equal the seed paper's (its Phase A+ notebook's
f-strings quoted below as the reference), whole article texts come from the MediaWiki API (a real loopback server)
and are cached beside introductions, the one summary goes before the snippets of every answer prompt; the
``#…#`` title reading on the paper's reply shapes."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl, urlsplit

import pytest
from helpers import ScriptedBackend, compose_config
from hydra.utils import instantiate
from test_run_identity import Backends, run

from bioqa.answers.phase_a import parse_hashtag_titles
from bioqa.data import Snippet
from bioqa.models import Completion
from bioqa.pipeline import app
from bioqa.prompts.render import SUMMARY_SECTION, format_snippets
from bioqa.retrieval.wikipedia_cache import WikipediaCache

SYSTEM = "You are BioASQ-GPT, an AI expert in question answering, research, and information retrieval in the biomedical domain."
SUMMARY_SYSTEM = "You are an AI expert in extracting and summarizing relevant information from Wikipedia articles in the biomedical domain."
INTRO = {"Aspirin": "Aspirin is an NSAID.", "Reye syndrome": "Reye syndrome is an encephalopathy."}
FULL = {t: f"{text}\n\nHistory\nFirst described long ago ({t})." for t, text in INTRO.items()}


def paper_titles(question: str) -> str:
    return f"""
    Given the question "{question}", identify existing Wikipedia articles that offer helpful background information to answer this question. 
    Ensure that the titles listed are of real articles on Wikipedia as of your last training cut-off. Wrap the confirmed article titles in hashtags (e.g., #Article Title#). 
    Provide a step-by-step reasoning for your selections, ensuring relevance to the main components of the question.

    Step 1: Confirm the Existence of Articles
    Before listing any articles, briefly verify their existence by ensuring they are well-known topics generally covered by Wikipedia.

    Step 2: List Relevant Wikipedia Articles
    After confirming, list the articles, wrapping the titles in hashtags and explaining how each article is relevant to the question.
    """


def paper_summary(question: str, wikipedia_context: str) -> str:
    return f"""
    Given the biomedical question: "{question}"
    
    And the following relevant Wikipedia articles:
    {wikipedia_context}
    
    Your task is to extract and summarize the most relevant information from these articles to help answer the question. Follow these steps:
    
    1. Carefully read through the provided Wikipedia articles.
    2. Identify the key information that directly relates to the biomedical question.
    3. Extract the relevant passages, focusing on the most important details and context.
    4. Summarize the extracted information concisely, maintaining the essential meaning and context.
    5. Organize the summarized information in a clear and coherent manner.
    
    Provide your summary below, formatted as follows:
    SUMMARY: [Your concise summary of the relevant information from the Wikipedia articles]
    """


TITLES_REPLY = (
    "Step 1: Confirm the Existence of Articles\nAll are well-known topics.\n\n"
    "Step 2: List Relevant Wikipedia Articles\n1. #Aspirin# - the drug itself.\n"
    "2. #Reye syndrome# - its risk in children.\n3. #Salicylate poisoning of pets# - toxicity."
)
SUMMARY_REPLY = "SUMMARY: Aspirin is an NSAID; in children it is linked to Reye syndrome."


class MediaWiki:
    """Introductions for ``exintro`` queries, whole texts otherwise (``missing`` for other titles)."""

    def __init__(self, full: dict[str, str] = FULL):
        self.queries: list[dict[str, str]] = []
        self.full = full

    def __call__(self, path, body, headers):
        query = dict(parse_qsl(urlsplit(path).query))
        self.queries.append(query)
        title = query["titles"]
        if title not in INTRO:
            return 200, {"query": {"pages": [{"ns": 0, "title": title, "missing": True}]}}
        text = INTRO[title] if "exintro" in query else self.full[title]
        return 200, {"query": {"pages": [{"pageid": 1, "ns": 0, "title": title, "extract": text}]}}


def reply(user: str) -> str:
    return TITLES_REPLY if "identify existing Wikipedia articles" in user else SUMMARY_REPLY


def wikipedia(tmp_path, url: str, *more: str):
    overrides = ["retrieval=wikipedia", "retrieval.wikipedia.style=paper", "retrieval.wikipedia.max_articles=20"]
    overrides += [f"retrieval.wikipedia.api_url={url}", f"retrieval.wikipedia.cache_path={tmp_path}/wiki.sqlite"]
    return instantiate(compose_config("infer", [*overrides, *more]).retrieval.wikipedia)


def test_paper_requests_whole_articles_and_one_summary(json_server, tmp_path):
    api = MediaWiki()
    url = json_server(api) + "/w/api.php"
    question = "Why is aspirin avoided in children?"
    backend = ScriptedBackend(reply)
    [[summary]] = wikipedia(tmp_path, url).context_for([question], backend)
    titles_request, summary_request = backend.requests
    assert list(titles_request.messages) == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": paper_titles(question)},
    ]
    context = FULL["Aspirin"] + "\n\n" + FULL["Reye syndrome"] + "\n\n"
    assert list(summary_request.messages) == [
        {"role": "system", "content": SUMMARY_SYSTEM},
        {"role": "user", "content": paper_summary(question, context)},
    ]
    assert all(r.json_schema is None and r.params.max_new_tokens == 4096 for r in backend.requests)
    assert (summary.text, summary.summary, summary.as_context()) == (SUMMARY_REPLY, True, SUMMARY_REPLY)
    assert [q["titles"] for q in api.queries] == ["Aspirin", "Reye syndrome", "Salicylate poisoning of pets"]
    assert all("exintro" not in q and q["exsectionformat"] == "plain" for q in api.queries)

    cache = WikipediaCache(tmp_path / "wiki.sqlite")
    assert cache.get("en", "Aspirin", full=True).text == FULL["Aspirin"]
    assert cache.get("en", "Aspirin") is None  # introductions are kept apart
    cache.put("en", "Aspirin", "Aspirin", INTRO["Aspirin"])
    assert cache.get("en", "Aspirin", full=True).text == FULL["Aspirin"]
    assert cache.counts("en", full=True) == {"pages": 3, "missing": 1, "redirects": 0, "wanted": 0}

    offline = wikipedia(tmp_path, url, "retrieval.wikipedia.offline=true")
    again = ScriptedBackend(reply)
    assert offline.context_for([question], again) == [[summary]] and len(api.queries) == 3
    assert again.requests[1].messages == summary_request.messages


def test_a_summary_that_would_not_fit_has_its_articles_cut_and_counted(json_server, tmp_path):
    api = MediaWiki({**FULL, "Aspirin": "Aspirin history. " * 2000})
    context = wikipedia(tmp_path, json_server(api) + "/w/api.php")
    backend = ScriptedBackend(reply)
    context.context_for(["Is aspirin safe?"], backend)
    summary_request = backend.requests[1]
    assert backend.count_tokens(summary_request.messages) + 4096 <= 8192
    assert context.calls["summary.context_cut"] == 1 and context.calls["summary.calls"] == 1


@pytest.mark.parametrize(
    ("titles_reply", "without"), [("#Aspirin#", 0), ("No article comes to mind.", 1), ("#Not A Real Page Zz#", 1)]
)
def test_a_summary_asked_for_from_no_article_is_counted_and_said(titles_reply, without, json_server, tmp_path, caplog):
    context = wikipedia(tmp_path, json_server(MediaWiki()) + "/w/api.php")
    backend = ScriptedBackend(lambda user: titles_reply if "hashtags" in user else SUMMARY_REPLY)
    with caplog.at_level(logging.WARNING, logger="bioqa.retrieval.wikipedia"):
        context.context_for(["Is aspirin safe?"], backend)
    assert context.calls["summary.without_articles"] == without and context.calls["summary.calls"] == 1
    said = [r.getMessage() for r in caplog.records if "no article" in r.getMessage()]
    assert len(said) == without


def test_the_summary_goes_before_the_snippets_of_every_answer_prompt(json_server, tmp_path, monkeypatch):
    made = Backends()
    made.reply = lambda r: Completion(
        text=reply(r.messages[-1]["content"]) if "ikipedia" in r.messages[-1]["content"] else '{"answer": "yes"}'
    )
    monkeypatch.setattr(app, "build_backend", made)
    url = json_server(MediaWiki()) + "/w/api.php"
    overrides = ["retrieval=wikipedia", "retrieval.wikipedia.style=paper", "retrieval.wikipedia.max_articles=20"]
    overrides += [f"retrieval.wikipedia.api_url={url}", "prompt.structured=false", "task.kinds=[exact]"]
    run(tmp_path, *overrides)
    answers = [r for r in made.built[0].requests if "You *must answer*" in r.messages[-1]["content"]]
    assert len(answers) == 2
    for request in answers:
        user = request.messages[-1]["content"]
        assert user.startswith(SUMMARY_REPLY + "\n\n[{'offsetInBeginSection'"), user[:200]
        assert user.count(SUMMARY_REPLY) == 1
    snippet = Snippet(document="d", text="A snippet.", begin_section="abstract", end_section="abstract")
    summary = Snippet(document="w", text="SUMMARY: s", begin_section=SUMMARY_SECTION)
    assert format_snippets([snippet, summary], "numbered") == "SUMMARY: s\n\n[1] A snippet."
    assert json.dumps(format_snippets([summary], "paper")) == json.dumps("SUMMARY: s\n\n[]")


@pytest.mark.parametrize(
    ("text", "titles"),
    [
        (TITLES_REPLY, ["Aspirin", "Reye syndrome", "Salicylate poisoning of pets"]),
        ("#Losartan#, #Alzheimer's disease# and #Losartan# again", ["Losartan", "Alzheimer's disease"]),
        ("No hashtags at all: Aspirin, Reye syndrome", []),
        ("#Aspirin#\n#Reye syndrome#", ["Aspirin", "Reye syndrome"]),
        ("", []),
    ],
)
def test_hashtag_titles_on_the_papers_reply_shapes(text, titles):
    assert parse_hashtag_titles(text) == titles


def test_prefetch_full_fills_the_whole_texts_for_offline_paper_runs(json_server, tmp_path, capsys):
    from bioqa.retrieval.wikipedia import main

    api = MediaWiki()
    titles = tmp_path / "titles.txt"
    titles.write_text("Aspirin\nReye syndrome\n", encoding="utf-8")
    argv = ["--cache", str(tmp_path / "wiki.sqlite"), "--titles", str(titles), "--full", "--no-progress"]
    counts = main([*argv, "--api-url", json_server(api) + "/w/api.php"])
    assert (counts["fetched"], counts["pages"]) == (2, 2)
    cache = WikipediaCache(tmp_path / "wiki.sqlite")
    assert [cache.get("en", t, full=True).text for t in ("Aspirin", "Reye syndrome")] == [
        FULL["Aspirin"],
        FULL["Reye syndrome"],
    ]
    assert cache.counts("en") == {"pages": 0, "missing": 0, "redirects": 0, "wanted": 0}
