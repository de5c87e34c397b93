"""Search backends (tantivy, Elasticsearch), quote location, passage scoring and Wikipedia context."""

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
