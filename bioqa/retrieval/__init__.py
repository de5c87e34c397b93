"""Search backends (tantivy, Elasticsearch/OpenSearch, dense MiniLM, hybrid), PubMed XML ingestion
(``python -m bioqa.retrieval.ingest``), quote location, passage scoring and Wikipedia context (SQLite cache)."""

from bioqa.retrieval.base import Hit, SearchIndex, bow_query, keywords, read_corpus
from bioqa.retrieval.index import TantivyIndex
from bioqa.retrieval.locate import Span, locate, sentence_spans

__all__ = [
    "Hit",
    "SearchIndex",
    "Span",
    "TantivyIndex",
    "bow_query",
    "keywords",
    "locate",
    "read_corpus",
    "sentence_spans",
]
