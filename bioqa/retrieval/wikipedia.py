"""Optional Wikipedia context: the model names articles for a question, their introductions are fetched
with ``wikipedia-api`` (httpx underneath) and, optionally, summarised by the model for the question.

Network use is explicit: nothing is fetched unless ``max_articles > 0``. Tests and offline runs inject an
``httpx`` transport (e.g. ``httpx.MockTransport``), which ``wikipediaapi.Wikipedia`` passes to its client.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import wikipediaapi

from bioqa.answers import TITLES_SCHEMA, parse_list
from bioqa.models import Backend, ChatRequest, GenerationParams

log = logging.getLogger(__name__)

#: Wikimedia asks for a contact in the User-Agent: set your own (config ``retrieval.wikipedia.user_agent``).
USER_AGENT = "bioqa/0.1 (biomedical question answering research)"


@dataclass(frozen=True)
class WikiArticle:
    """An article's introduction (or the model's summary of it) to show the answering model."""

    title: str
    url: str
    text: str

    def as_context(self) -> str:
        return f"Wikipedia, {self.title}: {self.text}"


def parse_titles(text: str, limit: int) -> list[str]:
    """Article titles from ``{"articles": [...]}``, a JSON list, or one title per line; duplicates removed."""
    items = parse_list(text, "articles")
    if items is None:
        items = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line) for line in text.splitlines()]
    titles = [str(t).strip().strip("\"'`[]").strip() for t in items if isinstance(t, str | int)]
    return list(dict.fromkeys(t for t in titles if 0 < len(t) <= 200))[:limit]


class WikipediaContext:
    """Wikipedia articles relevant to questions, as extra answering context."""

    def __init__(
        self,
        prompts: dict[str, str] | None = None,
        max_articles: int = 3,
        max_chars: int = 1500,
        summarise: bool = False,
        language: str = "en",
        user_agent: str = USER_AGENT,
        timeout_s: float = 10.0,
        max_retries: int = 1,
        titles_max_tokens: int = 64,
        summary_max_tokens: int = 192,
        transport: httpx.BaseTransport | None = None,
    ):
        self.prompts = dict(prompts or {})
        needed = ["system", "titles"] + (["summary"] if summarise else [])
        if max_articles > 0 and (missing := [k for k in needed if not self.prompts.get(k)]):
            raise ValueError(f"wikipedia context: prompt templates missing for {missing}")
        self.max_articles, self.max_chars, self.summarise = max_articles, max_chars, summarise
        self.language = language
        self.titles_max_tokens, self.summary_max_tokens = titles_max_tokens, summary_max_tokens
        extra = {"transport": transport} if transport is not None else {}
        self.wiki = wikipediaapi.Wikipedia(
            user_agent=user_agent, language=language, timeout=timeout_s, max_retries=max_retries, **extra
        )

    def _request(self, user: str, max_new_tokens: int, schema: dict | None = None) -> ChatRequest:
        messages = ({"role": "system", "content": self.prompts["system"]}, {"role": "user", "content": user})
        return ChatRequest(messages, GenerationParams(max_new_tokens=max_new_tokens), schema)

    def fetch(self, title: str) -> WikiArticle | None:
        """The introduction of an article (redirects followed), or ``None`` when missing or unreachable."""
        try:
            page = self.wiki.page(title)
            text = self.wiki.extracts(page, exintro=1, redirects=1).strip()
        except (wikipediaapi.WikipediaException, httpx.HTTPError) as err:
            log.warning("wikipedia: could not fetch %r: %s", title, err)
            return None
        if not text:
            return None
        resolved = page.title or title
        url = f"https://{self.language}.wikipedia.org/wiki/{quote(resolved.replace(' ', '_'))}"
        return WikiArticle(resolved, url, text[: self.max_chars])

    def context_for(self, questions: Sequence[str], backend: Backend) -> list[list[WikiArticle]]:
        """Up to ``max_articles`` articles per question (same order); ``[]`` everywhere when disabled."""
        if self.max_articles <= 0 or not questions:
            return [[] for _ in questions]
        requests = [
            self._request(
                self.prompts["titles"].format(question=q, k=self.max_articles), self.titles_max_tokens, TITLES_SCHEMA
            )
            for q in questions
        ]
        completions = backend.generate(requests)
        cache: dict[str, WikiArticle | None] = {}
        articles: list[list[WikiArticle]] = []
        for completion in completions:
            found = []
            for title in parse_titles(completion.text if completion.ok else "", self.max_articles):
                if title not in cache:
                    cache[title] = self.fetch(title)
                if cache[title] is not None and cache[title] not in found:
                    found.append(cache[title])
            articles.append(found)
        if self.summarise:
            articles = self._summarise(questions, articles, backend)
        return articles

    def _summarise(self, questions: Sequence[str], articles: list[list[WikiArticle]], backend: Backend) -> list:
        jobs = [(i, a) for i, found in enumerate(articles) for a in found]
        requests = [
            self._request(
                self.prompts["summary"].format(question=questions[i], title=a.title, text=a.text),
                self.summary_max_tokens,
            )
            for i, a in jobs
        ]
        summaries: list[list[WikiArticle]] = [[] for _ in questions]
        for (i, article), completion in zip(jobs, backend.generate(requests), strict=True):
            text = completion.text.strip() if completion.ok else ""
            summaries[i].append(WikiArticle(article.title, article.url, text or article.text))
        return summaries
