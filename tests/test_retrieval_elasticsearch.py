"""The Elasticsearch/OpenSearch backend against real loopback HTTP servers: ``_search`` answered like a
node, and bulk indexing answered from recorded reply bodies (tests/fixtures/elasticsearch)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from helpers import POLL_S

from bioqa.errors import ConfigError
from bioqa.retrieval.elasticsearch import BulkSink, ElasticsearchIndex, IndexingError, index_body
from bioqa.retrieval.ingest import main as ingest_main

DOCS = [
    {"pmid": "90000015", "title": "Statins inhibit HMG-CoA reductase", "abstract": "Statins lower LDL."},
    {"pmid": "90000016", "title": "PCSK9 antibodies", "abstract": "Evolocumab lowers LDL cholesterol."},
]


class FakeSearch:
    """Accepts ``query_string`` unless it contains ``((``; ``simple_query_string`` always; scores by term hits."""

    requests: ClassVar[list[dict]] = []

    @staticmethod
    def respond(path: str, body: dict, headers) -> tuple[int, dict]:
        FakeSearch.requests.append({"path": path, "body": body, "auth": headers.get("Authorization")})
        if path != "/pubmed/_search":
            return 404, {"error": "index_not_found_exception"}
        kind, spec = next(iter(body["query"].items()))
        if kind == "query_string" and "((" in spec["query"]:
            return 400, {"error": {"type": "query_shard_exception"}}
        words = [w.strip('"().').lower() for w in spec.get("query", spec.get("like", "")).split()]
        hits = []
        for doc in DOCS:
            text = f"{doc['title']} {doc['abstract']}".lower()
            score = sum(w in text for w in words if w)
            if score:
                hits.append({"_index": "pubmed", "_id": doc["pmid"], "_score": float(score), "_source": doc})
        hits.sort(key=lambda h: -h["_score"])
        return 200, {"took": 1, "hits": {"total": {"value": len(hits)}, "hits": hits[: body["size"]]}}


@pytest.fixture()
def server(json_server) -> str:
    FakeSearch.requests.clear()
    return json_server(FakeSearch.respond)


def test_query_string_search_returns_hits(server):
    index = ElasticsearchIndex(url=server, index="pubmed", api_key="secret")
    hits = index.search('"HMG-CoA" OR LDL', k=5)
    assert [h.pmid for h in hits] == ["90000015", "90000016"]
    assert hits[0].title == DOCS[0]["title"] and hits[0].score >= hits[1].score
    sent = FakeSearch.requests[0]
    assert sent["body"]["size"] == 5 and sent["auth"] == "ApiKey secret"
    assert sent["body"]["query"]["query_string"]["fields"] == ["title", "abstract"]


def test_rejected_query_is_retried_as_simple_query_string(server):
    hits = ElasticsearchIndex(url=server).search("((evolocumab", k=3)
    assert [h.pmid for h in hits] == ["90000016"]
    assert [next(iter(r["body"]["query"])) for r in FakeSearch.requests] == ["query_string", "simple_query_string"]


def test_more_like_this_sends_the_papers_query(server):
    like = "Statins lower LDL by inhibiting HMG-CoA reductase."
    hits = ElasticsearchIndex(url=server).more_like_this(like, k=100)
    assert [h.pmid for h in hits] == ["90000015", "90000016"]
    [sent] = FakeSearch.requests
    assert sent["body"]["size"] == 100
    assert sent["body"]["query"] == {
        "more_like_this": {
            "fields": ["title", "abstract"],
            "like": like,
            "min_term_freq": 1,
            "min_doc_freq": 1,
            "boost_terms": 1,
        }
    }


def test_empty_query_sends_nothing(server):
    assert ElasticsearchIndex(url=server).search("   ") == []
    assert FakeSearch.requests == []


def test_configuration_errors_raise_clearly(server):
    with pytest.raises(RuntimeError, match="HTTP 404"):
        ElasticsearchIndex(url=server, index="missing").search("statins")
    with pytest.raises(RuntimeError, match="unreachable"):
        ElasticsearchIndex(url="http://127.0.0.1:9", timeout_s=2).search("statins")


# ----------------------------------------------------------------------------- bulk indexing (replayed replies)

REPLIES = json.loads((Path(__file__).resolve().parent / "fixtures" / "elasticsearch" / "responses.json").read_text())
QUEUE_FULL = REPLIES["bulk_queue_full_429"]


class Cluster(ThreadingHTTPServer):
    """A loopback server that answers HEAD/PUT/POST like an Elasticsearch/OpenSearch node, from recorded reply
    bodies; ``script(method, path, body) -> (status, payload) | None`` overrides the default behaviour."""

    def __init__(self, script=None, index_exists: bool = False):
        self.script, self.exists = script, index_exists
        self.requests: list[tuple[str, str, str, dict]] = []
        self.docs: dict[str, dict] = {}
        super().__init__(("127.0.0.1", 0), ClusterHandler)
        threading.Thread(target=self.serve_forever, args=(POLL_S,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, method: str, path: str, body: str) -> tuple[int, dict | None]:
        custom = self.script(method, path, body) if self.script else None
        if custom is not None:
            return custom
        if method == "HEAD":
            return (200 if self.exists else 404), None
        if method == "PUT":
            self.exists = True
            return 200, REPLIES["create_index"]
        if path.endswith("/_refresh"):
            return 200, REPLIES["refresh"]
        if path == "/_bulk":
            return 200, self.bulk(body)
        return 404, {"error": "no such route"}

    def bulk(self, body: str, statuses: dict[str, str] | None = None) -> dict:
        lines = [json.loads(line) for line in body.splitlines() if line]
        items, k = [], 0
        while k < len(lines):
            (kind, meta), k = next(iter(lines[k].items())), k + 1
            pmid = meta["_id"]
            reply = (statuses or {}).get(pmid)
            if kind == "index":
                if reply is None:
                    self.docs[pmid] = lines[k]
                k += 1
                reply = reply or "item_created"
            else:
                reply = reply or ("item_deleted" if self.docs.pop(pmid, None) else "item_not_found")
            items.append({kind: {**REPLIES[reply], "_id": pmid}})
        errors = any(next(iter(i.values()))["status"] >= 300 for i in items)
        return {"took": 3, "errors": errors, "items": items}


class ClusterHandler(BaseHTTPRequestHandler):
    server: Cluster

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.server.requests.append((method, self.path, body, dict(self.headers)))
        status, payload = self.server.answer(method, self.path, body)
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self):
        self._handle("HEAD")

    def do_PUT(self):
        self._handle("PUT")

    def do_POST(self):
        self._handle("POST")

    def log_message(self, *args):
        pass


@pytest.fixture
def cluster_factory():
    started: list[Cluster] = []

    def start(script=None, index_exists: bool = False) -> Cluster:
        started.append(Cluster(script, index_exists))
        return started[-1]

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def sink(cluster: Cluster, **kwargs) -> BulkSink:
    return BulkSink(url=cluster.url, index="pubmed", sleep=lambda s: None, **kwargs)


def test_mapping_uses_the_english_analyzer_and_strict_fields():
    body = index_body(shards=8, replicas=1)
    props = body["mappings"]["properties"]
    assert body["settings"]["number_of_shards"] == 8 and body["settings"]["number_of_replicas"] == 1
    assert all(props[f]["analyzer"] == "english" for f in ("title", "abstract", "mesh"))
    assert props["pmid"]["type"] == "keyword" and body["mappings"]["dynamic"] == "strict"


@pytest.mark.parametrize("flavour", ["elasticsearch", "opensearch"])
def test_the_ingest_command_creates_the_index_and_applies_updates_and_deletions(
    flavour, cluster_factory, tmp_path, monkeypatch
):
    from test_retrieval_ingest import gzipped

    cluster = cluster_factory()
    for name in ("pubmed26n0001.xml", "pubmed26n0002.xml"):
        gzipped(name, tmp_path / "src")
    monkeypatch.setenv("BIOQA_ES_USERNAME", "admin")
    monkeypatch.setenv("BIOQA_ES_PASSWORD", "secret")
    args = [str(tmp_path / "src"), "--index", flavour, "--url", cluster.url, "--manifest", str(tmp_path / "m.json")]
    report = ingest_main([*args, "--no-progress", "--shards", "2"])
    assert (report.files_ingested, report.citations, report.deleted) == (2, 9, 2)
    assert sorted(cluster.docs) == ["91000001", "91000002", "91000003", "91000005", "91000006", "91000007", "91000008"]
    assert cluster.docs["91000005"]["title"].startswith("Imatinib inhibits")  # the update replaced it
    assert cluster.docs["91000001"]["mesh"] == ["Diabetes Mellitus, Type 2", "Metformin"]
    assert "year" not in cluster.docs["91000002"] or cluster.docs["91000002"]["year"] == 1998
    put = next(r for r in cluster.requests if r[0] == "PUT")
    assert put[1] == "/pubmed" and json.loads(put[2])["settings"]["number_of_shards"] == 2
    bulk = next(r for r in cluster.requests if r[1] == "/_bulk")
    assert bulk[3]["Content-Type"] == "application/x-ndjson" and bulk[3]["Authorization"].startswith("Basic ")
    assert [r[1] for r in cluster.requests].count("/pubmed/_refresh") == 2  # one commit per file
    again = ingest_main([*args, "--no-progress"])
    assert (again.files_ingested, again.files_skipped) == (0, 2)


def test_back_pressure_is_retried_until_every_document_is_in(cluster_factory):
    rejected = {"whole": 2, "items": 1}

    def script(method, path, body):
        if path != "/_bulk":
            return None
        if rejected["whole"]:
            rejected["whole"] -= 1
            return 429, REPLIES["bulk_queue_full_429"]
        if rejected["items"]:
            rejected["items"] -= 1
            return 200, cluster.bulk(body, statuses={"2": "item_rejected_429"})
        return None

    cluster = cluster_factory(script, index_exists=True)
    pauses: list[float] = []
    target = BulkSink(url=cluster.url, sleep=pauses.append, backoff_s=0.5)
    target.upsert([{"pmid": str(k), "title": f"t{k}", "abstract": "a"} for k in range(1, 4)])
    assert sorted(cluster.docs) == ["1", "2", "3"] and target.retries == 3
    assert pauses == [0.5, 1.0, 0.5]  # exponential back-off per request, then for the refused item
    assert not any(r[0] == "PUT" for r in cluster.requests)  # the index existed


def test_large_batches_are_split_by_size(cluster_factory):
    cluster = cluster_factory(index_exists=True)
    target = sink(cluster, max_bulk_bytes=2_000)
    target.upsert([{"pmid": str(k), "title": "x" * 500, "abstract": ""} for k in range(10)])
    assert len(cluster.docs) == 10 and [r[1] for r in cluster.requests].count("/_bulk") >= 4


@pytest.mark.parametrize(
    ("script", "error", "message"),
    [
        (lambda m, p, b: (401, REPLIES["security_401"]) if m == "HEAD" else None, ConfigError, "refused the cred"),
        (lambda m, p, b: (400, REPLIES["index_exists"]) if m == "PUT" else None, None, ""),  # a race: fine
        (lambda m, p, b: (500, {"error": "boom"}) if m == "PUT" else None, ConfigError, "cannot create index"),
        (
            lambda m, p, b: (429, REPLIES["bulk_queue_full_429"]) if p == "/_bulk" else None,
            IndexingError,
            "still HTTP 429",
        ),
        (lambda m, p, b: (503, {}) if m == "HEAD" else None, IndexingError, "still HTTP 503"),
        (lambda m, p, b: (200, {"took": 1}) if p == "/_bulk" else None, IndexingError, "unreadable reply"),
        (lambda m, p, b: (200, {"items": []}) if p == "/_bulk" else None, IndexingError, "0 results for 1"),
        (lambda m, p, b: (413, {"error": "too large"}) if p == "/_bulk" else None, IndexingError, "HTTP 413"),
        (lambda m, p, b: (500, {}) if p.endswith("_refresh") else None, IndexingError, "_refresh: HTTP 500"),
    ],
)
def test_server_failures_end_in_one_clear_error(script, error, message, cluster_factory):
    cluster = cluster_factory(script)

    def run() -> None:
        target = sink(cluster, max_retries=2)
        target.upsert([{"pmid": "1", "title": "t", "abstract": "a", "year": None, "mesh": []}])
        target.commit()

    if error is None:
        run()
        assert cluster.docs["1"] == {"pmid": "1", "title": "t", "abstract": "a"}  # empty fields left out
        return
    with pytest.raises(error, match=message):
        run()


def test_item_failures_name_the_documents_and_absent_deletions_are_fine(cluster_factory):
    def script(method, path, body):
        if path == "/_bulk" and '"index"' in body:
            return 200, cluster.bulk(body, statuses={"7": "item_mapping_error"})
        return None

    cluster = cluster_factory(script, index_exists=True)
    target = sink(cluster)
    target.delete(["404404"])  # not found: nothing to delete, no error
    with pytest.raises(IndexingError, match=r"refused 1 documents: 7 \(document_parsing_exception\)"):
        target.upsert([{"pmid": "6", "title": "a", "abstract": ""}, {"pmid": "7", "title": "b", "abstract": ""}])


def test_unreachable_cluster_is_a_configuration_error():
    with pytest.raises(ConfigError, match="unreachable"):
        BulkSink(url="http://127.0.0.1:9", timeout_s=2, sleep=lambda s: None)


def test_search_reports_a_retried_query_in_the_trace(server):
    hits, info = ElasticsearchIndex(url=server).search_traced("((evolocumab", k=3)
    assert [h.pmid for h in hits] == ["90000016"] and info == {"mode": "simple_query_string"}
