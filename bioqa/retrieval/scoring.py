"""Scoring short passages against a question without an LLM: BM25, optionally mixed with sentence embeddings."""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from functools import cached_property

from bioqa.retrieval.base import STOPWORDS

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def _stem(word: str) -> str:
    """A deliberately light stemmer (plural and common suffixes) so 'inhibitors' meets 'inhibitor'."""
    for suffix in ("ies", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def tokens(text: str) -> list[str]:
    return [_stem(w) for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS]


def bm25_scores(query: str, passages: Sequence[str], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Okapi BM25 of every passage for ``query``, with document frequencies taken from ``passages``."""
    docs = [tokens(p) for p in passages]
    if not docs:
        return []
    avg_len = sum(len(d) for d in docs) / len(docs) or 1.0
    df = Counter(term for d in docs for term in set(d))
    n = len(docs)
    terms = set(tokens(query))
    scores = []
    for doc in docs:
        tf = Counter(doc)
        score = 0.0
        for term in terms & tf.keys():
            idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
            score += idf * tf[term] * (k1 + 1) / (tf[term] + k1 * (1 - b + b * len(doc) / avg_len))
        scores.append(score)
    return scores


def _minmax(values: Sequence[float]) -> list[float]:
    low, high = min(values), max(values)
    return [0.0 if high == low else (v - low) / (high - low) for v in values]


class PassageScorer:
    """BM25 relevance of passages to a question, averaged with embedding cosine when a model is given.

    ``embedding_model`` is a local sentence-transformers directory (e.g. the packaged all-MiniLM-L6-v2);
    it is loaded on first use.
    """

    def __init__(self, embedding_model: str | os.PathLike | None = None, embedding_weight: float = 0.5):
        self.embedding_model = embedding_model
        self.embedding_weight = embedding_weight

    @cached_property
    def _encoder(self):
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self.embedding_model), device="cpu")

    def scores(self, question: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        lexical = _minmax(bm25_scores(question, passages))
        if self.embedding_model is None:
            return lexical
        vectors = self._encoder.encode([question, *passages], normalize_embeddings=True, convert_to_numpy=True)
        dense = _minmax((vectors[1:] @ vectors[0]).tolist())
        w = self.embedding_weight
        return [(1 - w) * lex + w * den for lex, den in zip(lexical, dense, strict=True)]
