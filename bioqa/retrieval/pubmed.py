"""Streaming reader of NLM PubMed baseline and update files (``pubmedYYnNNNN.xml.gz``, plain ``.xml`` too).

Memory stays constant: every ``PubmedArticle`` is turned into a :class:`Citation` and its element cleared
(the root drops its children as well). Text follows what the official BioASQ snippet offsets expect:

* the title is ``ArticleTitle`` with inline markup (``<i>``, ``<sup>``) flattened to its text;
* a structured abstract joins its ``AbstractText`` parts with no separator, each labelled part written as
  ``LABEL: text`` — e.g. ``"...in healthcare.OBJECTIVES: To provide..."`` as in the 9B–11B golden snippets;
* ``year`` is the journal issue's ``PubDate/Year`` (else the first year in ``MedlineDate``, else
  ``ArticleDate/Year``), ``None`` when absent; ``mesh`` lists the ``DescriptorName`` of every heading.

``DeleteCitation`` blocks (update files) yield :class:`Deletion` s; ``PubmedBookArticle`` s are read from
their ``BookDocument``. A file that is not a ``PubmedArticleSet``, or holds no record at all (no article and no
deletion: an update that only deletes is legitimate), is refused: it is no PubMed file.
"""

from __future__ import annotations

import gzip
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from bioqa.errors import BioQAError

_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")


class PubMedFormatError(BioQAError):
    """A PubMed XML file that cannot be read (truncated, not XML, not gzip)."""


@dataclass(frozen=True)
class Citation:
    """One PubMed record, as indexed."""

    pmid: str
    title: str
    abstract: str
    year: int | None = None
    mesh: tuple[str, ...] = field(default=())
    version: int = 1

    def as_document(self) -> dict:
        return {
            "pmid": self.pmid,
            "title": self.title,
            "abstract": self.abstract,
            "year": self.year,
            "mesh": list(self.mesh),
        }


@dataclass(frozen=True)
class Deletion:
    """PMIDs an update file removes."""

    pmids: tuple[str, ...]


def _text(element: ET.Element | None) -> str:
    return "".join(element.itertext()).strip() if element is not None else ""


def join_abstract(abstract: ET.Element | None) -> str:
    """The abstract as one string: parts joined with no separator, labelled parts as ``LABEL: text``."""
    if abstract is None:
        return ""
    parts = []
    for part in abstract.iterfind("AbstractText"):
        text = _text(part)
        label = (part.get("Label") or "").strip()
        if label and text:
            parts.append(f"{label}: {text}")
        elif text:
            parts.append(text)
    return "".join(parts)


def _year(root: ET.Element) -> int | None:
    for path in ("PubDate/Year", "PubDate/MedlineDate"):
        found = _YEAR.search(_text(root.find(f".//JournalIssue/{path}")))
        if found:
            return int(found[1])
    found = _YEAR.search(_text(root.find(".//ArticleDate/Year")) or _text(root.find(".//PubDate/Year")))
    return int(found[1]) if found else None


def _citation(element: ET.Element) -> Citation | None:
    if element.tag == "PubmedArticle":
        citation = element.find("MedlineCitation")
        article = citation.find("Article") if citation is not None else None
        pmid_el = citation.find("PMID") if citation is not None else None
        title = _text(article.find("ArticleTitle")) if article is not None else ""
        abstract = join_abstract(article.find("Abstract")) if article is not None else ""
        mesh = tuple(_text(d) for d in element.iterfind(".//MeshHeadingList/MeshHeading/DescriptorName"))
        source = article if article is not None else element
    else:  # PubmedBookArticle
        book = element.find("BookDocument")
        pmid_el = book.find("PMID") if book is not None else None
        title = _text(book.find("ArticleTitle")) or _text(book.find("Book/BookTitle")) if book is not None else ""
        abstract = join_abstract(book.find("Abstract")) if book is not None else ""
        mesh, source = (), book if book is not None else element
    pmid = _text(pmid_el)
    if not pmid:
        return None
    version = pmid_el.get("Version", "1") if pmid_el is not None else "1"
    return Citation(
        pmid=pmid,
        title=title,
        abstract=abstract,
        year=_year(source),
        mesh=tuple(m for m in mesh if m),
        version=int(version) if version.isdigit() else 1,
    )


def _open(path: str | os.PathLike) -> BinaryIO:
    handle = open(path, "rb")  # noqa: SIM115 - returned to the caller, closed there
    magic = handle.read(2)
    handle.seek(0)
    return gzip.GzipFile(fileobj=handle) if magic == b"\x1f\x8b" else handle


class PubMedFile:
    """Iterate one file's citations and deletions in document order; ``compressed_position`` is how far
    into the file on disk the reader is (for progress bars)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._raw: BinaryIO | None = None

    @property
    def compressed_position(self) -> int:
        if self._raw is None:
            return 0
        inner = getattr(self._raw, "fileobj", None) or self._raw
        try:
            return inner.tell()
        except (ValueError, OSError):  # closed
            return os.path.getsize(self.path)

    def __iter__(self) -> Iterator[Citation | Deletion]:
        self._raw = _open(self.path)
        records = 0
        try:
            root = None
            for event, element in ET.iterparse(self._raw, events=("start", "end")):
                if root is None:
                    root = element
                    if root.tag != "PubmedArticleSet":
                        raise PubMedFormatError(
                            f"{self.path}: not a PubMed XML file (its root element is <{root.tag}>, "
                            "expected <PubmedArticleSet>)"
                        )
                if event != "end":
                    continue
                if element.tag in ("PubmedArticle", "PubmedBookArticle", "DeleteCitation"):
                    records += 1
                if element.tag in ("PubmedArticle", "PubmedBookArticle"):
                    citation = _citation(element)
                    if citation is not None and not citation.pmid.isdigit():
                        raise PubMedFormatError(
                            f"{self.path}: record {records} has PMID {citation.pmid!r}, not a number: not a PubMed "
                            "citation"
                        )
                    if citation is not None:
                        yield citation
                    element.clear()
                    root.clear()
                elif element.tag == "DeleteCitation":
                    yield Deletion(tuple(_text(p) for p in element.iterfind("PMID") if _text(p)))
                    element.clear()
                    root.clear()
        except (ET.ParseError, EOFError, gzip.BadGzipFile) as err:
            raise PubMedFormatError(f"{self.path}: not a readable PubMed XML file ({err})") from None
        finally:
            self._raw.close()
        if not records:
            raise PubMedFormatError(
                f"{self.path}: no PubMed record in this file (no PubmedArticle, PubmedBookArticle or DeleteCitation)"
            )
