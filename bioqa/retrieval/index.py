"""BM25 search over PubMed with tantivy (on disk, multi-segment), queried with Elasticsearch-style strings.

Two sources: an index built from the NLM XML files by :mod:`bioqa.retrieval.ingest` (``index_dir``; fields
``pmid``, ``title``, ``abstract``, ``mesh``, ``year``), or a corpus JSONL indexed once into
``<cache_dir>/<corpus stem>-<sha256 prefix>-v<schema>`` and reused by every later run on the same file.
Searches cover ``title`` and ``abstract`` (English stemming), with optional per-field boosts.

Query strings follow the Lucene/Elasticsearch ``query_string`` syntax as far as tantivy's parser goes:
``AND``/``OR``/``NOT``, ``&&``/``||``/``!``, ``+``/``-``, quoted phrases (``"a b"~2`` slop), parentheses,
``title:term``/``abstract:(a OR b)`` and ``term^2`` boosts; the default operator is ``OR``, as in Elasticsearch.
Differences from Elasticsearch, handled before parsing (LLM output is never trusted to be valid):

* typographic quotes become ``"``; PubMed field tags such as ``[tiab]`` or ``[MeSH Terms]`` are dropped;
* field names are case-insensitive (``Title:``); unknown fields are dropped, their terms then search the
  default fields (``mesh:`` is known only in indexes built from PubMed XML);
* ``NOT x`` and ``!x`` become ``-x`` (tantivy reads ``a AND NOT b`` as requiring a match-nothing clause);
  a group made only of exclusions (``(-x)``, or ``-x AND y``) still matches nothing, unlike Elasticsearch;
* term wildcards (``vaccin*``, ``?``) and fuzzy marks (``word~1``) are dropped: the English stemmer already
  conflates most inflections; ranges, regexes and ``IN [...]`` sets are not supported;
* a query tantivy still rejects is repaired (balanced quotes and parentheses, dangling operators and empty
  boosts removed), then parsed leniently (unparsable parts match nothing), and as a last resort searched
  as a bag of words. :meth:`TantivyIndex.parse` reports which of these was used.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import tantivy
from tqdm.auto import tqdm

from bioqa.errors import ConfigError
from bioqa.resources import demo_corpus_path
from bioqa.retrieval.base import Hit, bow_query, read_corpus
from bioqa.runs import file_sha256

SCHEMA_VERSION = 2
FIELDS = ("title", "abstract")  # searched by default
QUERY_FIELDS = (*FIELDS, "mesh")  # may be named in a query (``mesh:"cystic fibrosis"``)
_COMPLETE = "COMPLETE"  # written last: a directory without it is an interrupted build

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'"})
_QUOTED = re.compile(r'("[^"]*")')
_PUBMED_TAG = re.compile(r"\[[A-Za-z][A-Za-z ]{0,30}\]")
_FIELD = re.compile(r"([A-Za-z_][\w.]*):\s*(?=[^\s:]|$)")
_WILDCARD = re.compile(r"(?<=\w)[*?]+|(?<=\s)\?+|^\?+")
_FUZZY = re.compile(r"(?<=[^\s\"~])~\d*(?:\.\d+)?")
_NOT = re.compile(r"\bNOT\s+|(?<![^\s(])!(?=[\w(\"])")
_EMPTY_BOOST = re.compile(r"\^(?![\d.])")
_DANGLING = re.compile(
    r"^\s*(?:AND|OR|&&|\|\|)(?:\s+|$)|(?:^|\s+)(?:AND|OR|NOT|&&|\|\||[+\-!])\s*$"
    r"|(?<=\()\s*(?:AND|OR|&&|\|\|)\s+|\s+(?:AND|OR|NOT|&&|\|\||[+\-!])\s*(?=\))"
)
_UPPER_WORD = re.compile(r"\b(?!(?:AND|OR|NOT)\b)([A-Z][A-Z0-9]*)\b")


def _outside_quotes(text: str, edit) -> str:
    """Apply ``edit`` to the parts of ``text`` outside double-quoted phrases."""
    return "".join(
        part if part.startswith('"') and part.endswith('"') and len(part) > 1 else edit(part)
        for part in _QUOTED.split(text)
    )


def normalise_query(query: str, fields: tuple[str, ...] = FIELDS) -> str:
    """Rewrite Elasticsearch/PubMed habits tantivy does not share (see the module docstring)."""
    query = query.translate(_QUOTES).replace("\n", " ").strip()

    def edit(part: str) -> str:
        part = _PUBMED_TAG.sub(" ", part)
        part = _FIELD.sub(lambda m: f"{m[1].lower()}:" if m[1].lower() in fields else "", part)
        part = _WILDCARD.sub("", part)
        part = _NOT.sub("-", part)
        return _FUZZY.sub("", part)

    return re.sub(r"\s+", " ", _outside_quotes(query, edit)).strip()


def repair_query(query: str) -> str:
    """Best-effort syntax repair: balanced quotes and parentheses, no dangling operators or empty boosts."""
    if query.count('"') % 2:
        last = query.rfind('"')
        query = query[:last] + query[last + 1 :]
    query = _outside_quotes(query, lambda part: _UPPER_WORD.sub(lambda m: m[1].lower(), _EMPTY_BOOST.sub(" ", part)))
    balanced, depth = [], 0
    for part in _QUOTED.split(query):
        if part.startswith('"') and len(part) > 1:
            balanced.append(part)
            continue
        for char in part:
            if char == ")":
                if depth == 0:
                    continue
                depth -= 1
            elif char == "(":
                depth += 1
            balanced.append(char)
    query = "".join(balanced) + ")" * depth
    query = re.sub(r"\(\s*\)", " ", query)
    previous = None
    while previous != query:
        previous, query = query, _DANGLING.sub("", query)
    return query.strip()


@dataclass
class ParsedQuery:
    """A query ready for tantivy and how it was obtained (``strict``, ``repaired``, ``lenient``,
    ``bag_of_words`` or ``empty``)."""

    query: tantivy.Query | None
    text: str
    mode: str
    errors: list[str] = field(default_factory=list)


def pubmed_schema() -> tantivy.Schema:
    """``pmid`` (exact, for updates and deletions), ``title``/``abstract``/``mesh`` (English stemming), ``year``."""
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("pmid", stored=True, tokenizer_name="raw")
    for name in QUERY_FIELDS:
        builder.add_text_field(name, stored=True, tokenizer_name="en_stem")
    builder.add_integer_field("year", stored=True, indexed=True, fast=True)
    return builder.build()


def tantivy_document(doc: dict) -> tantivy.Document:
    """A tantivy document from ``{"pmid", "title", "abstract"[, "year", "mesh"]}`` (missing fields left out)."""
    fields = {"pmid": doc["pmid"], "title": doc.get("title") or "", "abstract": doc.get("abstract") or ""}
    if doc.get("mesh"):
        fields["mesh"] = list(doc["mesh"])
    if doc.get("year") is not None:
        fields["year"] = int(doc["year"])
    return tantivy.Document(**fields)


def open_index(path: str | os.PathLike, create: bool = False) -> tantivy.Index:
    """The tantivy index in ``path``; created empty when ``create`` and absent; a foreign schema is refused."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(20, "not a directory", str(path))
    if path.is_dir() and tantivy.Index.exists(str(path)):
        index = tantivy.Index.open(str(path))
        try:
            index.parse_query("mesh:x AND year:2000", ["title", "abstract"])
        except ValueError:
            raise ConfigError(
                f"{path}: a tantivy index of another schema; rebuild it with bioqa.retrieval.ingest"
            ) from None
        return index
    if path.is_dir() and any(not p.name.startswith(".") for p in path.iterdir()):  # hidden: locks
        raise ConfigError(f"{path}: not a tantivy index (no meta.json) and not empty; choose another directory")
    if not create:
        raise ConfigError(
            f"{path}: no tantivy index here; build one with python -m bioqa.retrieval.ingest FILES --out {path}"
        )
    path.mkdir(parents=True, exist_ok=True)
    return tantivy.Index(pubmed_schema(), path=str(path))


class TantivyIndex:
    """BM25 search over PubMed-style documents: an index built by :mod:`bioqa.retrieval.ingest`
    (``index_dir``), or a corpus JSONL (``pmid``, ``title``, ``abstract``) indexed on first use into
    ``cache_dir`` and reused (``corpus_path``; ``None`` = the packaged demo corpus)."""

    def __init__(
        self,
        corpus_path: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        index_dir: str | os.PathLike | None = None,
        field_boosts: dict[str, float] | None = None,
        show_progress: bool = True,
        heap_size_mb: int = 128,
        threads: int = 1,
    ):
        self.field_boosts = dict(field_boosts or {})
        if unknown := sorted(set(self.field_boosts) - set(QUERY_FIELDS)):
            raise ConfigError(f"field_boosts: unknown fields {unknown}; known: {list(QUERY_FIELDS)}")
        # MeSH headings exist only in indexes built from PubMed XML: elsewhere ``mesh:`` terms search the text
        self.query_fields = QUERY_FIELDS if index_dir is not None else FIELDS
        if index_dir is not None:
            self.corpus_path, self.path = None, Path(index_dir)
        else:
            self.corpus_path = Path(corpus_path) if corpus_path is not None else demo_corpus_path()
            if not self.corpus_path.is_file():
                raise FileNotFoundError(2, "corpus not found", str(self.corpus_path))
            if cache_dir is None:
                raise ConfigError("cache_dir is needed to index a corpus JSONL")
            digest = file_sha256(self.corpus_path)[:16]
            self.path = Path(cache_dir) / f"{self.corpus_path.stem}-{digest}-v{SCHEMA_VERSION}"
            if not (self.path / _COMPLETE).is_file():
                self._build(show_progress, heap_size_mb, threads)
        self._index = open_index(self.path)
        self._searcher = self._index.searcher()

    def _build(self, show_progress: bool, heap_size_mb: int, threads: int) -> None:
        """Index into a private temporary directory, then move it into place (safe against crashes and races)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        index = open_index(tmp, create=True)
        writer = index.writer(heap_size=heap_size_mb * 1_000_000, num_threads=threads)
        total = self.corpus_path.stat().st_size
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=f"indexing {self.corpus_path.name}", disable=not show_progress
        ) as bar:
            for doc in read_corpus(self.corpus_path):
                writer.add_document(tantivy_document(doc))
                bar.update(len(doc["title"].encode()) + len(doc["abstract"].encode()) + len(doc["pmid"]) + 40)
        writer.commit()
        writer.wait_merging_threads()
        (tmp / _COMPLETE).write_text(str(self.corpus_path), encoding="utf-8")
        try:
            tmp.rename(self.path)
        except OSError:  # another process finished first: use its index
            shutil.rmtree(tmp, ignore_errors=True)
            if not (self.path / _COMPLETE).is_file():
                raise

    @property
    def num_docs(self) -> int:
        return self._searcher.num_docs

    def _parse(self, text: str) -> tantivy.Query:
        return self._index.parse_query(text, list(FIELDS), field_boosts=self.field_boosts)

    def parse(self, query: str) -> ParsedQuery:
        """Turn an LLM-written query string into a tantivy query; never raises."""
        text = normalise_query(query, self.query_fields)
        if not text:
            return ParsedQuery(None, text, "empty")
        try:
            return ParsedQuery(self._parse(text), text, "strict")
        except ValueError as err:
            errors = [str(err)]
        repaired = repair_query(text)
        if repaired:
            try:
                return ParsedQuery(self._parse(repaired), repaired, "repaired", errors)
            except ValueError as err:
                errors.append(str(err))
            try:
                lenient, problems = self._index.parse_query_lenient(
                    repaired, list(FIELDS), field_boosts=self.field_boosts
                )
                if not problems:
                    return ParsedQuery(lenient, repaired, "lenient", errors)
                errors.extend(str(p) for p in problems)
            except ValueError as err:
                errors.append(str(err))
        words = bow_query(query)
        if not words:
            return ParsedQuery(None, words, "empty", errors)
        return ParsedQuery(self._parse(words), words, "bag_of_words", errors)

    def search(self, query: str, k: int = 10) -> list[Hit]:
        """The ``k`` best documents for an Elasticsearch-style ``query`` (BM25 over title and abstract)."""
        return self.search_traced(query, k)[0]

    def search_traced(self, query: str, k: int = 10) -> tuple[list[Hit], dict]:
        """:meth:`search` and how the query was read (``mode``; the text searched and parser errors when the
        query had to be repaired or replaced)."""
        parsed = self.parse(query)
        info: dict = {"mode": parsed.mode}
        if parsed.mode != "strict":
            info.update(searched=parsed.text, errors=parsed.errors[:3])
        if parsed.query is None or k <= 0:
            return [], info
        return [
            self._hit(score, address) for score, address in self._searcher.search(parsed.query, k, count=False).hits
        ], info

    def more_like_this(self, text: str, k: int = 100) -> list[Hit]:
        """Documents like ``text`` (tantivy's MoreLikeThisQuery over title and abstract, terms kept from frequency 1):
        the seed paper's Wikipedia-grounded query, as Elasticsearch's ``more_like_this`` ran it."""
        if not text.strip() or k <= 0:
            return []
        fields = {field: [text] for field in FIELDS}
        query = tantivy.Query.more_like_this_document_fields_query(
            self._index.schema, fields, min_doc_frequency=1, min_term_frequency=1
        )
        return [self._hit(score, address) for score, address in self._searcher.search(query, k, count=False).hits]

    def _hit(self, score: float, address) -> Hit:
        doc = self._searcher.doc(address)
        return Hit(
            pmid=doc["pmid"][0],
            score=float(score),
            title=(doc["title"] or [""])[0],
            abstract=(doc["abstract"] or [""])[0],
        )

    def documents(self, pmids: list[str]) -> dict[str, Hit]:
        """Stored documents by PMID (score 0); unknown PMIDs are left out."""
        found = {}
        for pmid in pmids:
            query = tantivy.Query.term_query(self._index.schema, "pmid", pmid)
            for _, address in self._searcher.search(query, 1).hits:
                found[pmid] = self._hit(0.0, address)
        return found
