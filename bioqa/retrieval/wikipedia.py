"""Optional Wikipedia context: the model names articles for a question, their introductions are fetched from the
MediaWiki API (:mod:`bioqa.retrieval.mediawiki`, ``api_url``) and, optionally, summarised by the model for the question.

Network use is explicit: nothing is fetched unless ``max_articles > 0``. Fetched pages, redirects and misses
go into a persistent SQLite cache (:mod:`bioqa.retrieval.wikipedia_cache`, ``cache_path``); with
``offline=True`` only the cache is read, and the titles it lacks are warned about, listed in ``self.missing``
and recorded in the cache's ``wanted`` table, which this module's command fetches on a networked machine:

    python -m bioqa.retrieval.wikipedia --cache cache/wikipedia.sqlite --wanted      # what offline runs lacked
    python -m bioqa.retrieval.wikipedia --cache cache/wikipedia.sqlite --titles titles.txt
    python -m bioqa.retrieval.wikipedia --cache cache/wikipedia.sqlite --wanted --full  # whole texts (style=paper)

``api_url`` points the client at any MediaWiki: Wikipedia (the default), a mirror, or the local HTTP server the
tests run with recorded API replies.

``style="paper"`` runs the seed paper's Wikipedia context as its Phase A+/B notebooks did
(``02_12B/Batch3/PhaseA+/UR-IW-*-Run.ipynb``): titles asked for step by step and read from ``#hashtags#``, the
whole text of each article (cached beside the introductions: ``--full`` fills it), concatenated and summarised
for the question by a second prompt with its own system message; the one summary is what the answer prompts
get, before the snippets. The concatenated text is cut (and counted: ``calls["summary.context_cut"]``) only
where the summary request would not fit the model's context window.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from tqdm.auto import tqdm

from bioqa.answers import parse_list, titles_schema
from bioqa.answers.phase_a import parse_hashtag_titles
from bioqa.errors import ArgumentParser, ConfigError, TooManyFailures, error_boundary
from bioqa.models import Backend, ChatRequest, Completion, GenerationParams
from bioqa.prompts.template import fill
from bioqa.retrieval.mediawiki import WIKIPEDIA_API, MediaWikiClient, MediaWikiError
from bioqa.retrieval.wikipedia_cache import WikipediaCache

log = logging.getLogger(__name__)

#: Wikimedia asks for a contact in the User-Agent: set your own (config ``retrieval.wikipedia.user_agent``).
USER_AGENT = "bioqa/0.1 (biomedical question answering research)"
#: The paper style's prompts: the title request's system and user turns, the summary request's.
PAPER_PROMPT_KEYS = ("system", "titles", "summary_system", "summary")


@dataclass(frozen=True)
class WikiArticle:
    """An article's introduction (or the model's summary of it) to show the answering model; ``summary``: the
    paper style's one summary of all articles of a question (shown as it is)."""

    title: str
    url: str
    text: str
    summary: bool = False

    def as_context(self) -> str:
        return self.text if self.summary else f"Wikipedia, {self.title}: {self.text}"


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
        titles_max_tokens: int = 128,
        summary_max_tokens: int = 192,
        api_url: str = WIKIPEDIA_API,
        cache_path: str | os.PathLike | None = None,
        offline: bool = False,
        style: str = "bioqa",
        paper_prompts: dict[str, str] | None = None,
        paper_max_tokens: int = 4096,
    ):
        if style not in ("bioqa", "paper"):
            raise ConfigError(f"style={style!r}: expected bioqa or paper")
        if not re.match(r"https?://", api_url):
            raise ConfigError(f"api_url={api_url!r}: expected an http:// or https:// URL of a MediaWiki Action API")
        self.style, self.paper_max_tokens = style, paper_max_tokens
        self.paper_prompts = dict(paper_prompts or {})
        if style == "paper" and max_articles > 0:
            missing = [k for k in PAPER_PROMPT_KEYS if not self.paper_prompts.get(k)]
            if missing:
                raise ConfigError(f"paper_prompts: templates missing for {missing}")
        self.prompts = dict(prompts or {})
        if offline and cache_path is None:
            raise ConfigError("offline=True needs a cache_path (the cache an offline context reads)")
        self.offline, self.cache_path = offline, cache_path
        if offline and max_articles > 0:
            _ = self.cache  # a missing cache is a configuration error before any model call
        self.missing: list[str] = []  # titles an offline run lacked
        self.last_failure: str | None = None  # why the last fetch that failed failed
        self.counts = {"cache_hits": 0, "fetched": 0, "misses": 0, "unreachable": 0, "offline_missing": 0}
        #: model calls of this context: asked, failed (``failed_<error kind>`` too), per stage (titles, summary)
        self.calls: Counter[str] = Counter()
        needed = ["system", "titles"] + (["summary"] if summarise else [])
        if max_articles > 0 and style == "bioqa" and (missing := [k for k in needed if not self.prompts.get(k)]):
            raise ValueError(f"wikipedia context: prompt templates missing for {missing}")
        self.max_articles, self.max_chars, self.summarise = max_articles, max_chars, summarise
        self.language = language
        self.titles_max_tokens, self.summary_max_tokens = titles_max_tokens, summary_max_tokens
        self.client = MediaWikiClient(api_url, language, user_agent, timeout_s, max_retries)

    @functools.cached_property
    def cache(self) -> WikipediaCache | None:
        """The SQLite cache, opened on first use (``None`` without ``cache_path``)."""
        return WikipediaCache(self.cache_path, create=not self.offline) if self.cache_path is not None else None

    @property
    def full(self) -> bool:
        """Whole page texts (the paper style), not introductions."""
        return self.style == "paper"

    def _request(
        self, user: str, max_new_tokens: int, schema: dict | None = None, system: str | None = None
    ) -> ChatRequest:
        system = self.prompts["system"] if system is None else system
        messages = ({"role": "system", "content": system}, {"role": "user", "content": user})
        return ChatRequest(messages, GenerationParams(max_new_tokens=max_new_tokens), schema)

    def _article(self, title: str, text: str) -> WikiArticle:
        url = f"https://{self.language}.wikipedia.org/wiki/{quote(title.replace(' ', '_'))}"
        return WikiArticle(title, url, text if self.full else text[: self.max_chars])

    def download(self, title: str) -> tuple[str | None, str] | None:
        """``(resolved title, introduction)`` from Wikipedia, ``(None, "")`` for a page that does not exist,
        ``None`` when unreachable (warned about; never cached)."""
        try:
            resolved, text = self.client.full_text(title) if self.full else self.client.introduction(title)
        except MediaWikiError as err:
            log.warning("wikipedia: could not fetch %r: %s", title, err)
            self.counts["unreachable"] += 1
            self.last_failure = str(err)
            return None
        self.counts["fetched"] += 1
        if resolved is None or not text:
            return None, ""
        return resolved, text

    def fetch(self, title: str) -> WikiArticle | None:
        """The introduction of an article (redirects followed), from the cache when it has it; ``None`` when
        missing, unreachable, or (offline) not cached."""
        cached = self.cache.get(self.language, title, self.full) if self.cache else None
        if cached is not None:
            self.counts["cache_hits"] += 1
            if cached.missing:
                self.counts["misses"] += 1
            return None if cached.missing else self._article(cached.title, cached.text)
        if self.offline:
            self.counts["offline_missing"] += 1
            self.missing.append(title)
            self.cache.want(self.language, title, self.full)
            return None
        found = self.download(title)
        if found is None:
            return None
        resolved, text = found
        if self.cache is not None:
            self.cache.put(self.language, title, resolved, text, self.full)
        if resolved is None:
            self.counts["misses"] += 1
            return None
        return self._article(resolved, text)

    def context_for(self, questions: Sequence[str], backend: Backend) -> list[list[WikiArticle]]:
        """Up to ``max_articles`` articles per question (same order); ``[]`` everywhere when disabled."""
        if self.max_articles <= 0 or not questions:
            return [[] for _ in questions]
        if self.style == "paper":
            return self._paper_context(questions, backend)
        requests = [
            self._request(
                fill(self.prompts["titles"], question=q, k=self.max_articles),
                self.titles_max_tokens,
                titles_schema(self.max_articles),
            )
            for q in questions
        ]
        completions = self._generate("titles", requests, backend)
        articles = self._fetch_all([parse_titles(c.text if c.ok else "", self.max_articles) for c in completions])
        if self.summarise:
            articles = self._summarise(questions, articles, backend)
        return articles

    def _fetch_all(self, titles: list[list[str]]) -> list[list[WikiArticle]]:
        """The articles of every question's titles (each fetched once), the offline run's lacking titles warned."""
        cache: dict[str, WikiArticle | None] = {}
        articles: list[list[WikiArticle]] = []
        for wanted in titles:
            found = []
            for title in wanted:
                if title not in cache:
                    cache[title] = self.fetch(title)
                if cache[title] is not None and cache[title] not in found:
                    found.append(cache[title])
            articles.append(found)
        if self.missing:
            log.warning(
                "wikipedia offline: %d titles not in the cache %s (recorded as wanted; fetch them with "
                "python -m bioqa.retrieval.wikipedia --cache %s --wanted): %s",
                len(self.missing),
                self.cache.path,
                self.cache.path,
                ", ".join(dict.fromkeys(self.missing)),
            )
        return articles

    def _paper_context(self, questions: Sequence[str], backend: Backend) -> list[list[WikiArticle]]:
        """The paper's context: hashtag titles, whole articles concatenated (``text + "\\n\\n"`` each), one summary
        per question (asked for even when no article was found, as the paper did)."""
        prompts, limit = self.paper_prompts, self.paper_max_tokens
        requests = [
            self._request(fill(prompts["titles"], question=q), limit, system=prompts["system"]) for q in questions
        ]
        completions = self._generate("titles", requests, backend)
        titles = [parse_hashtag_titles(c.text if c.ok else "", self.max_articles) for c in completions]
        articles = self._fetch_all(titles)
        empty = sum(not found for found in articles)
        self.calls["summary.without_articles"] += empty  # accumulates across calls, like the other counts
        if empty:
            log.warning(
                "Wikipedia (paper style): %d of %d questions have no article; their summaries are asked for from no "
                "text, as the paper did (wikipedia.summary.without_articles)",
                empty,
                len(articles),
            )
        summaries = [
            self._summary_request(q, "".join(a.text + "\n\n" for a in found), backend)
            for q, found in zip(questions, articles, strict=True)
        ]
        return [
            [WikiArticle("summary", found[0].url if found else "", c.text.strip(), summary=True)]
            if c.ok and c.text.strip()
            else []
            for found, c in zip(articles, self._generate("summary", summaries, backend), strict=True)
        ]

    def _summary_request(self, question: str, context: str, backend: Backend) -> ChatRequest:
        """The paper's summary request, its articles' text cut (counted) only where it would not fit the context."""
        prompts, cut = self.paper_prompts, False
        while True:
            user = fill(prompts["summary"], question=question, wikipedia_context=context)
            request = self._request(user, self.paper_max_tokens, system=prompts["summary_system"])
            fits = backend.count_tokens(request.messages) + self.paper_max_tokens <= backend.context_window
            if fits or len(context) < 1000:
                self.calls["summary.context_cut"] += cut
                return request
            context, cut = context[: int(len(context) * 0.8)], True

    def _generate(self, stage: str, requests: list[ChatRequest], backend: Backend) -> list[Completion]:
        """``backend``'s completions, counted in :attr:`calls`; failures are warned about in one line."""
        completions = backend.generate(requests)
        failed = Counter(c.error_kind for c in completions if not c.ok)
        self.calls.update({f"{stage}.calls": len(requests), f"{stage}.failed": sum(failed.values())})
        self.calls.update({f"{stage}.failed_{kind}": n for kind, n in failed.items()})
        if failed:
            kinds = ", ".join(f"{kind} ×{n}" for kind, n in failed.most_common())
            consequence = (
                "questions without Wikipedia context"
                if stage == "titles" or self.full
                else "introductions kept unsummarised"
            )
            log.warning(
                "wikipedia: %d of %d %s requests failed (%s): %s%s",
                sum(failed.values()),
                len(requests),
                stage,
                kinds,
                consequence,
                f"; raise retrieval.wikipedia.{stage}_max_tokens" if "truncated" in failed else "",
            )
        return completions

    def _summarise(self, questions: Sequence[str], articles: list[list[WikiArticle]], backend: Backend) -> list:
        jobs = [(i, a) for i, found in enumerate(articles) for a in found]
        requests = [
            self._request(
                fill(self.prompts["summary"], question=questions[i], title=a.title, text=a.text),
                self.summary_max_tokens,
            )
            for i, a in jobs
        ]
        summaries: list[list[WikiArticle]] = [[] for _ in questions]
        for (i, article), completion in zip(jobs, self._generate("summary", requests, backend), strict=True):
            text = completion.text.strip() if completion.ok else ""
            summaries[i].append(WikiArticle(article.title, article.url, text or article.text))
        return summaries


def prefetch(context: WikipediaContext, titles: Iterable[str], show_progress: bool = True) -> dict[str, int]:
    """Fetch ``titles`` into ``context``'s cache (those already cached are skipped); the context's counts."""
    if context.cache is None or context.offline:
        raise ConfigError("prefetch needs an online WikipediaContext with a cache_path")
    for title in tqdm(list(dict.fromkeys(titles)), desc="wikipedia prefetch", unit="title", disable=not show_progress):
        context.fetch(title)
    return {**context.counts, **context.cache.counts(context.language, context.full)}


def main(argv: Sequence[str] | None = None) -> dict[str, int]:
    parser = ArgumentParser(
        prog="python -m bioqa.retrieval.wikipedia", description="Fill the Wikipedia cache for offline runs."
    )
    parser.add_argument("--cache", required=True, help="the SQLite cache (retrieval.wikipedia.cache_path)")
    parser.add_argument("--titles", help="a file with one article title per line")
    parser.add_argument("--wanted", action="store_true", help="the titles offline runs recorded as lacking")
    parser.add_argument("--full", action="store_true", help="whole page texts (retrieval.wikipedia.style=paper)")
    parser.add_argument("--language", default="en")
    parser.add_argument("--api-url", default=WIKIPEDIA_API, help="the MediaWiki API ({language} is filled in)")
    parser.add_argument("--user-agent", default=os.environ.get("BIOQA_WIKIPEDIA_USER_AGENT", USER_AGENT))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if not args.titles and not args.wanted:
        raise ConfigError("give --titles FILE and/or --wanted")
    context = WikipediaContext(
        max_articles=0,
        language=args.language,
        user_agent=args.user_agent,
        cache_path=args.cache,
        api_url=args.api_url,
        style="paper" if args.full else "bioqa",
    )
    titles = context.cache.wanted(args.language, context.full) if args.wanted else []
    if args.titles:
        titles += read_titles(args.titles)
    counts = prefetch(context, titles, show_progress=not args.no_progress)
    print(" ".join(f"{k}={v}" for k, v in counts.items()), file=sys.stdout)
    if counts["unreachable"]:
        raise TooManyFailures(
            f"wikipedia prefetch: {counts['unreachable']} of {len(set(titles))} titles could not be fetched "
            f"(not cached; run the command again to fetch them); the last failure: {context.last_failure}"
        )
    return counts


def read_titles(path: str) -> list[str]:
    """The titles of ``--titles FILE`` (one a line); a file that is not UTF-8 or holds none is refused."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        titles = [line.strip() for line in data.decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as error:
        raise ConfigError(f"--titles {path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not titles:
        raise ConfigError(f"--titles {path}: no title in this file (one article title per line)")
    return titles


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    error_boundary(main)()
