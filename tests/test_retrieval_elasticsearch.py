"""The Elasticsearch backend against a real loopback HTTP server that answers like ``_search``."""

from __future__ import annotations

from typing import ClassVar

import pytest

from bioqa.retrieval.elasticsearch import ElasticsearchIndex

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
        words = [w.strip('"()').lower() for w in spec["query"].split()]
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


def test_empty_query_sends_nothing(server):
    assert ElasticsearchIndex(url=server).search("   ") == []
    assert FakeSearch.requests == []


def test_configuration_errors_raise_clearly(server):
    with pytest.raises(RuntimeError, match="HTTP 404"):
        ElasticsearchIndex(url=server, index="missing").search("statins")
    with pytest.raises(RuntimeError, match="unreachable"):
        ElasticsearchIndex(url="http://127.0.0.1:9", timeout_s=2).search("statins")
