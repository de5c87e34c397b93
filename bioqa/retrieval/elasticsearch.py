"""Search a real Elasticsearch index over HTTP (as the seed paper did over PubMed), with the same interface
as :class:`bioqa.retrieval.index.TantivyIndex`.

Documents need ``title`` and ``abstract`` fields (and ``pmid``, else the document ``_id`` is the PMID).
A query string Elasticsearch rejects (HTTP 400) is retried as a ``simple_query_string`` query, which never
fails on syntax; connection and server errors raise, since they are configuration problems, not bad queries.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

from bioqa.retrieval.base import Hit

log = logging.getLogger(__name__)


class ElasticsearchIndex:
    """``query_string`` search over ``fields`` of one Elasticsearch index."""

    def __init__(
        self,
        url: str = "http://localhost:9200",
        index: str = "pubmed",
        fields: Sequence[str] = ("title", "abstract"),
        default_operator: str = "OR",
        api_key: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.index, self.fields, self.default_operator = index, list(fields), default_operator
        headers = {"Authorization": f"ApiKey {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport)

    def _post(self, kind: str, query: str, k: int) -> httpx.Response:
        body = {
            "size": k,
            "_source": ["pmid", "title", "abstract"],
            "query": {kind: {"query": query, "fields": self.fields, "default_operator": self.default_operator}},
        }
        try:
            return self._client.post(f"/{self.index}/_search", json=body)
        except httpx.HTTPError as err:
            raise RuntimeError(f"Elasticsearch at {self._client.base_url} unreachable: {err}") from err

    def search(self, query: str, k: int = 10) -> list[Hit]:
        """The ``k`` best documents; a query Elasticsearch cannot parse is retried as ``simple_query_string``."""
        if not query.strip() or k <= 0:
            return []
        response = self._post("query_string", query, k)
        if response.status_code == 400:
            log.info("elasticsearch rejected query %r; retrying as simple_query_string", query)
            response = self._post("simple_query_string", query, k)
        if response.status_code != 200:
            raise RuntimeError(
                f"Elasticsearch {self._client.base_url}/{self.index}/_search: HTTP {response.status_code}: "
                f"{response.text[:300]}"
            )
        hits = []
        for raw in response.json().get("hits", {}).get("hits", []):
            source = raw.get("_source") or {}
            hits.append(
                Hit(
                    pmid=str(source.get("pmid") or raw.get("_id")),
                    score=float(raw.get("_score") or 0.0),
                    title=source.get("title") or "",
                    abstract=source.get("abstract") or "",
                )
            )
        return hits

    def close(self) -> None:
        self._client.close()
