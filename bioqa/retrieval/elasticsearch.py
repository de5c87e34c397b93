"""Elasticsearch / OpenSearch over HTTP (as the seed paper searched PubMed): searching, the index mapping, and
bulk indexing for :mod:`bioqa.retrieval.ingest` — one REST client (httpx) for both, since they share the
``_search``, ``_bulk`` and index APIs (the official Elasticsearch client refuses to talk to OpenSearch).

Searching: documents need ``title`` and ``abstract`` (and ``pmid``, else the document ``_id`` is the PMID).
A query string the server rejects (HTTP 400) is retried as a ``simple_query_string`` query, which never fails
on syntax; connection and server errors raise, since they are configuration problems, not bad queries.

Mapping (:func:`index_body`): ``title``/``abstract``/``mesh`` analysed with the built-in ``english`` analyzer
(stemming, English stopwords), ``pmid`` a keyword, ``year`` a short; the title boost is applied at query time
(``fields: [title^2, abstract]`` in ``conf/retrieval/elasticsearch.yaml``), as index-time boosts are gone.

Bulk indexing (:class:`BulkSink`): batches of at most ``max_bulk_bytes``; a whole request refused with 429/502/
503/504 (or a timeout) and the individual items refused with 429 (the write queue is full: back-pressure) are
retried with exponential back-off, up to ``max_retries`` times; any other item failure (a mapping error) or
exhausted retries raise naming the PMIDs, so nothing is lost silently. ``commit`` refreshes the index.

PubMed at scale — cluster sizing (estimates, not measured here: no Elasticsearch/OpenSearch server can run
on this machine): the indexed ``_source`` plus inverted index of title+abstract+MeSH is about 1.3–1.6 kB per
citation, i.e. ~50–60 GB primary for 36M citations (cf. tantivy's measured size per million documents in
``benchmarks/results/retrieval_throughput.json``). Use 6–8 primary shards (~8–10 GB each, well under the
recommended 10–50 GB), 1 replica for availability (×2 disk: ~120 GB, plus 30 % headroom for merges →
~160 GB across the cluster), and 3 data nodes with 16–32 GB RAM each (half to the JVM heap, at most 31 GB;
the rest for the file-system cache that keeps BM25 queries in the tens of milliseconds). A single node with
64 GB RAM and ~100 GB of SSD serves the whole baseline with ``--replicas 0``. Ingest with replicas 0 and
refresh every 30 s, then raise replicas.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence

import httpx

from bioqa.errors import BioQAError, ConfigError
from bioqa.retrieval.base import Hit

log = logging.getLogger(__name__)
RETRY_STATUS = frozenset({429, 502, 503, 504})


class IndexingError(BioQAError):
    """Documents the server would not index (after retries)."""


def _client(url: str, api_key, username, password, timeout_s: float, transport) -> httpx.Client:
    """An HTTP client with an API key (Elasticsearch) or basic auth (OpenSearch's security plugin)."""
    auth = (username, password or "") if username else None
    return httpx.Client(
        base_url=url.rstrip("/"),
        headers={"Authorization": f"ApiKey {api_key}"} if api_key else {},
        auth=auth,
        timeout=timeout_s,
        transport=transport,
    )


class ElasticsearchIndex:
    """``query_string`` search over ``fields`` of one Elasticsearch or OpenSearch index."""

    def __init__(
        self,
        url: str = "http://localhost:9200",
        index: str = "pubmed",
        fields: Sequence[str] = ("title", "abstract"),
        default_operator: str = "OR",
        api_key: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        username: str | None = None,
        password: str | None = None,
    ):
        self.index, self.fields, self.default_operator = index, list(fields), default_operator
        self._client = _client(url, api_key, username, password, timeout_s, transport)

    def _post(self, kind: str, query: str, k: int) -> httpx.Response:
        return self._send({kind: {"query": query, "fields": self.fields, "default_operator": self.default_operator}}, k)

    def _send(self, query: dict, k: int) -> httpx.Response:
        body = {"size": k, "_source": ["pmid", "title", "abstract"], "query": query}
        try:
            return self._client.post(f"/{self.index}/_search", json=body)
        except httpx.HTTPError as err:
            raise RuntimeError(f"Elasticsearch at {self._client.base_url} unreachable: {err}") from err

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return self.search_traced(query, k)[0]

    def search_traced(self, query: str, k: int = 10) -> tuple[list[Hit], dict]:
        """The ``k`` best documents; a query the server cannot parse is retried as ``simple_query_string``."""
        if not query.strip() or k <= 0:
            return [], {"mode": "empty"}
        response, mode = self._post("query_string", query, k), "strict"
        if response.status_code == 400:
            log.info("elasticsearch rejected query %r; retrying as simple_query_string", query)
            response, mode = self._post("simple_query_string", query, k), "simple_query_string"
        return self._hits(response), {"mode": mode}

    def more_like_this(self, text: str, k: int = 100) -> list[Hit]:
        """Documents like ``text``: the seed paper's Wikipedia-grounded query (``more_like_this`` over title and
        abstract, ``min_term_freq`` and ``min_doc_freq`` 1, ``boost_terms`` 1)."""
        if not text.strip() or k <= 0:
            return []
        like = {"fields": ["title", "abstract"], "like": text, "min_term_freq": 1, "min_doc_freq": 1, "boost_terms": 1}
        return self._hits(self._send({"more_like_this": like}, k))

    def _hits(self, response: httpx.Response) -> list[Hit]:
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


def index_body(shards: int = 6, replicas: int = 0) -> dict:
    """Settings and mapping of a PubMed index (see the module docstring)."""
    text = {"type": "text", "analyzer": "english"}
    return {
        "settings": {"number_of_shards": shards, "number_of_replicas": replicas, "refresh_interval": "30s"},
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "pmid": {"type": "keyword"},
                "title": text,
                "abstract": text,
                "mesh": {**text, "fields": {"raw": {"type": "keyword"}}},
                "year": {"type": "short"},
            },
        },
    }


class BulkSink:
    """Bulk upserts and deletions into an Elasticsearch/OpenSearch index (created with :func:`index_body`)."""

    def __init__(
        self,
        url: str = "http://localhost:9200",
        index: str = "pubmed",
        flavour: str = "elasticsearch",
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        shards: int = 6,
        replicas: int = 0,
        timeout_s: float = 120.0,
        max_retries: int = 6,
        backoff_s: float = 1.0,
        max_bulk_bytes: int = 8_000_000,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if flavour not in ("elasticsearch", "opensearch"):
            raise ConfigError(f"bulk sink: flavour must be elasticsearch or opensearch, got {flavour!r}")
        if shards < 1 or replicas < 0 or max_retries < 0 or max_bulk_bytes < 1000:
            raise ConfigError("bulk sink: shards >= 1, replicas >= 0, max_retries >= 0, max_bulk_bytes >= 1000")
        self.index, self.flavour = index, flavour
        self.max_retries, self.backoff_s, self.sleep = max_retries, backoff_s, sleep
        self.max_bulk_bytes = max_bulk_bytes
        self._client = _client(url, api_key, username, password, timeout_s, transport)
        self.retries = 0  # requests or items sent again (back-pressure), for the report
        self._ensure_index(shards, replicas)

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One request, retried with back-off on 429/5xx-unavailable and timeouts."""
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.request(method, path, **kwargs)
                if response.status_code not in RETRY_STATUS:
                    return response
                problem = f"HTTP {response.status_code}"
            except (httpx.TimeoutException, httpx.RemoteProtocolError) as err:
                problem = f"{type(err).__name__}"
            except httpx.HTTPError as err:
                raise ConfigError(f"{self.flavour} at {self._client.base_url} unreachable: {err}") from None
            if attempt < self.max_retries:
                self.retries += 1
                self.sleep(self.backoff_s * 2**attempt)
        raise IndexingError(
            f"{self.flavour} {self._client.base_url}{path}: still {problem} after {self.max_retries} retries"
        )

    def _ensure_index(self, shards: int, replicas: int) -> None:
        response = self._request("HEAD", f"/{self.index}")
        if response.status_code == 200:
            return
        if response.status_code in (401, 403):
            raise ConfigError(f"{self.flavour} refused the credentials (HTTP {response.status_code})")
        response = self._request("PUT", f"/{self.index}", json=index_body(shards, replicas))
        if response.status_code == 400 and "resource_already_exists" in response.text:
            return  # created meanwhile by another process
        if response.status_code not in (200, 201):
            raise ConfigError(
                f"{self.flavour}: cannot create index {self.index}: HTTP {response.status_code}: {response.text[:300]}"
            )

    def upsert(self, documents: list[dict]) -> None:
        actions = []
        for doc in documents:
            source = {k: v for k, v in doc.items() if v not in (None, [])}
            actions.append((doc["pmid"], {"index": {"_index": self.index, "_id": doc["pmid"]}}, source))
        self._bulk(actions)

    def delete(self, pmids: Sequence[str]) -> None:
        self._bulk([(pmid, {"delete": {"_index": self.index, "_id": pmid}}, None) for pmid in pmids])

    def _bulk(self, actions: list[tuple[str, dict, dict | None]]) -> None:
        batch, size = [], 0
        for action in actions:
            lines = (
                json.dumps(action[1]) + "\n" + (json.dumps(action[2], ensure_ascii=False) + "\n" if action[2] else "")
            )
            if batch and size + len(lines.encode()) > self.max_bulk_bytes:
                self._send(batch)
                batch, size = [], 0
            batch.append((action[0], lines))
            size += len(lines.encode())
        if batch:
            self._send(batch)

    def _send(self, batch: list[tuple[str, str]]) -> None:
        """POST one bulk request; items refused for back-pressure (429) are sent again after a pause."""
        for attempt in range(self.max_retries + 1):
            body = "".join(lines for _, lines in batch).encode()
            response = self._request("POST", "/_bulk", content=body, headers={"Content-Type": "application/x-ndjson"})
            if response.status_code != 200:
                raise IndexingError(f"{self.flavour} _bulk: HTTP {response.status_code}: {response.text[:300]}")
            try:
                reply = response.json()
                items = reply["items"]
            except (ValueError, KeyError, TypeError):
                raise IndexingError(f"{self.flavour} _bulk: unreadable reply {response.text[:200]!r}") from None
            if len(items) != len(batch):
                raise IndexingError(f"{self.flavour} _bulk: {len(items)} results for {len(batch)} actions")
            if not reply.get("errors"):
                return
            again, failed = [], []
            for (pmid, lines), item in zip(batch, items, strict=True):
                result = next(iter(item.values()))
                status = result.get("status", 0)
                if status == 429:
                    again.append((pmid, lines))
                elif status >= 300 and not (status == 404 and "delete" in item):  # deleting the absent is fine
                    failed.append(f"{pmid} ({(result.get('error') or {}).get('type', status)})")
            if failed:
                raise IndexingError(f"{self.flavour} refused {len(failed)} documents: {', '.join(failed[:5])}")
            if not again:
                return
            self.retries += len(again)
            if attempt < self.max_retries:
                self.sleep(self.backoff_s * 2**attempt)
            batch = again
        raise IndexingError(f"{self.flavour} _bulk: {len(batch)} documents still refused (429) after retries")

    def commit(self) -> None:
        response = self._request("POST", f"/{self.index}/_refresh")
        if response.status_code != 200:
            raise IndexingError(f"{self.flavour} _refresh: HTTP {response.status_code}: {response.text[:300]}")

    def rollback(self) -> None:
        """Bulk writes are applied as they go: nothing to undo; re-ingesting the file is idempotent."""

    def close(self) -> None:
        self._client.close()
