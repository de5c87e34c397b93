"""A small client of the MediaWiki Action API (``action=query&prop=extracts``) over ``httpx``.

Why not the ``wikipedia-api`` package (the design card's first choice): every release of it hard-codes the
endpoint (``https://{language}.wikipedia.org/w/api.php``), so it cannot be pointed at a Wikipedia mirror, an
institution's own MediaWiki or a local test server; its HTTP stack changed from ``requests`` (<= 0.10) to ``httpx``
(>= 0.11), 0.10.0 changed retries and keyword arguments incompatibly, and 0.16 pins ``httpx``, ``click`` and
``tenacity`` to exact versions, so a resolver that meets ``httpx`` 0.29 silently falls back to a two-year-old
``requests`` release. bioqa asks one question of the API (a page's plain-text introduction or whole text, redirects
followed): these ~100 lines, with ``api_url`` as the seam, are the whole dependency.
"""

from __future__ import annotations

import itertools
import time

import httpx

from bioqa.retry_after import retry_after_seconds

#: The public Wikipedia endpoint for a language code.
WIKIPEDIA_API = "https://{language}.wikipedia.org/w/api.php"
#: Longest wait a ``Retry-After`` header is obeyed for (seconds); longer asks are treated as failures.
MAX_RETRY_AFTER_S = 30.0


class MediaWikiError(Exception):
    """The API could not answer: unreachable, timed out, an HTTP error, a reply that is not the API's JSON."""


class MediaWikiClient:
    """Plain-text page introductions and whole texts from the MediaWiki API at ``api_url`` (``{language}`` is
    filled in)."""

    def __init__(
        self,
        api_url: str = WIKIPEDIA_API,
        language: str = "en",
        user_agent: str = "bioqa",
        timeout_s: float = 10.0,
        max_retries: int = 1,
    ):
        self.api_url = api_url.format(language=language)
        self.max_retries = max_retries
        self.client = httpx.Client(
            headers={"User-Agent": user_agent},
            timeout=timeout_s,
            transport=httpx.HTTPTransport(retries=max_retries),  # connection failures
            follow_redirects=True,
        )

    def introduction(self, title: str) -> tuple[str | None, str]:
        """``(resolved title, introduction)`` of ``title`` (redirects followed); ``(None, "")`` for a page the wiki
        does not have. Raises :class:`MediaWikiError` when the API cannot answer (after ``max_retries``)."""
        return self.extract(title, intro=True)

    def full_text(self, title: str) -> tuple[str | None, str]:
        """``(resolved title, whole plain text)`` of ``title``, section headings as plain lines (the seed paper's
        ``page.text``); otherwise as :meth:`introduction`."""
        return self.extract(title, intro=False)

    def extract(self, title: str, intro: bool) -> tuple[str | None, str]:
        """The plain-text extract of ``title``: its introduction (``intro``) or the whole page."""
        params = {
            "action": "query",
            "format": "json",
            "formatversion": "2",
            "prop": "extracts",
            "explaintext": "1",
            "redirects": "1",
            "titles": title,
            **({"exintro": "1"} if intro else {"exsectionformat": "plain"}),
        }
        reply = self._get(params)
        pages = reply.get("query", {}).get("pages") if isinstance(reply, dict) else None
        if not isinstance(pages, list) or not pages or not isinstance(pages[0], dict):
            raise MediaWikiError(f"{self.api_url}: a reply without query.pages for {title!r}")
        page = pages[0]
        if page.get("missing") or page.get("invalid"):
            return None, ""
        text = page.get("extract")
        if not isinstance(text, str):
            raise MediaWikiError(f"{self.api_url}: page {title!r} came without its extract")
        return str(page.get("title") or title), text.strip()

    def _get(self, params: dict[str, str]) -> dict:
        for attempt in itertools.count():
            try:
                response = self.client.get(self.api_url, params=params)
            except httpx.HTTPError as err:
                raise MediaWikiError(f"{self.api_url}: {type(err).__name__}: {err or 'no reply'}") from err
            wait = _retry_after(response) if response.status_code in (429, 503) else None
            if wait is not None and attempt < self.max_retries:
                time.sleep(wait)
                continue
            if response.status_code != 200:
                raise MediaWikiError(f"{self.api_url}: HTTP {response.status_code}")
            try:
                reply = response.json()
            except ValueError as err:
                raise MediaWikiError(f"{self.api_url}: the reply is not JSON ({len(response.content)} bytes)") from err
            if isinstance(reply, dict) and isinstance(reply.get("error"), dict):
                error = reply["error"]
                raise MediaWikiError(f"{self.api_url}: API error {error.get('code')}: {error.get('info')}")
            return reply

    def close(self) -> None:
        self.client.close()


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before retrying a 429/503 (:func:`~bioqa.retry_after.retry_after_seconds`; 1 s when the
    server names no valid wait), ``None`` when it asks for longer than :data:`MAX_RETRY_AFTER_S`."""
    wait = retry_after_seconds(response.headers)
    wait = 1.0 if wait is None else wait
    return wait if wait <= MAX_RETRY_AFTER_S else None
