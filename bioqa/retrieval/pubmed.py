"""Streaming reader of NLM PubMed baseline and update files (``pubmedYYnNNNN.xml.gz``, plain ``.xml`` too).

Parsed by lxml's ``iterparse`` filtered to the records, so only they reach Python (a DOCTYPE's DTD is neither
fetched nor loaded). Memory stays constant: every ``PubmedArticle`` is turned into a :class:`Citation`, then
cleared and dropped from its parent. Text follows what the official BioASQ snippet offsets expect:

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
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from lxml import etree

from bioqa.errors import BioQAError

_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_RECORDS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")


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


def _text(element: etree._Element | None) -> str:
    """All the text inside ``element`` (inline markup flattened), stripped; ``""`` for no element."""
    if element is None:
        return ""
    if not len(element):  # no markup inside: the common case, without a text iterator
        return (element.text or "").strip()
    return "".join(element.itertext()).strip()


def _child(element: etree._Element | None, tag: str) -> etree._Element | None:
    """The first child ``tag`` of ``element`` (ElementPath's ``find(tag)``)."""
    return next(element.iterchildren(tag), None) if element is not None else None


def _descend(elements: list[etree._Element], path: tuple[str, ...]) -> list[etree._Element]:
    """The elements at ``path[0]/path[1]/...`` below ``elements``, in ElementPath's order."""
    for tag in path:
        elements = [child for parent in elements for child in parent.iterchildren(tag)]
    return elements


def _find(element: etree._Element | None, *path: str) -> etree._Element | None:
    """ElementPath's ``element.find("a/b")``, ``None`` for no element."""
    found = _descend([element], path) if element is not None else []
    return found[0] if found else None


def _under(root: etree._Element, tag: str, *path: str) -> Iterator[etree._Element]:
    """ElementPath's ``root.iterfind(".//tag/path[0]/...")``: the matches below ``root``, in its order."""
    for element in root.iterdescendants(tag):
        yield from _descend([element], path)


def _first_under(root: etree._Element, tag: str, *path: str) -> etree._Element | None:
    return next(_under(root, tag, *path), None)


def join_abstract(abstract: etree._Element | None) -> str:
    """The abstract as one string: parts joined with no separator, labelled parts as ``LABEL: text``."""
    if abstract is None:
        return ""
    parts = []
    for part in abstract.iterchildren("AbstractText"):
        text = _text(part)
        label = (part.get("Label") or "").strip()
        if label and text:
            parts.append(f"{label}: {text}")
        elif text:
            parts.append(text)
    return "".join(parts)


def _year(root: etree._Element) -> int | None:
    for last in ("Year", "MedlineDate"):
        found = _YEAR.search(_text(_first_under(root, "JournalIssue", "PubDate", last)))
        if found:
            return int(found[1])
    found = _YEAR.search(
        _text(_first_under(root, "ArticleDate", "Year")) or _text(_first_under(root, "PubDate", "Year"))
    )
    return int(found[1]) if found else None


def _citation(element: etree._Element) -> Citation | None:
    if element.tag == "PubmedArticle":
        citation = _child(element, "MedlineCitation")
        article = _child(citation, "Article")
        pmid_el = _child(citation, "PMID")
        title = _text(_child(article, "ArticleTitle"))
        abstract = join_abstract(_child(article, "Abstract"))
        mesh = tuple(_text(d) for d in _under(element, "MeshHeadingList", "MeshHeading", "DescriptorName"))
        source = article if article is not None else element
    else:  # PubmedBookArticle
        book = _child(element, "BookDocument")
        pmid_el = _child(book, "PMID")
        title = _text(_child(book, "ArticleTitle")) or _text(_find(book, "Book", "BookTitle"))
        abstract = join_abstract(_child(book, "Abstract"))
        mesh, source = (), book if book is not None else element
    pmid = _text(pmid_el)
    if not pmid:
        return None
    version = pmid_el.get("Version", "1")
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
        root = None
        try:
            # only the root's start and the records' ends reach Python; DTDs are neither loaded nor fetched
            events = etree.iterparse(
                self._raw,
                events=("start", "end"),
                tag=("PubmedArticleSet", *_RECORDS),
                remove_comments=True,
                remove_pis=True,
                load_dtd=False,
                no_network=True,
            )
            for event, element in events:
                if root is None:
                    root = _checked_root(self.path, element.getroottree().getroot())
                if event != "end" or element.tag == "PubmedArticleSet":
                    continue
                records += 1
                if element.tag == "DeleteCitation":
                    yield Deletion(tuple(_text(p) for p in element.iterchildren("PMID") if _text(p)))
                else:
                    citation = _citation(element)
                    if citation is not None and not citation.pmid.isdigit():
                        raise PubMedFormatError(
                            f"{self.path}: record {records} has PMID {citation.pmid!r}, not a number: not a PubMed "
                            "citation"
                        )
                    if citation is not None:
                        yield citation
                element.clear()
                parent = element.getparent()
                while element.getprevious() is not None:  # the records already read
                    del parent[0]
            if root is None:  # no record, and a root of another name
                _checked_root(self.path, events.root)
        except (etree.XMLSyntaxError, EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise PubMedFormatError(f"{self.path}: not a readable PubMed XML file ({err})") from None
        finally:
            self._raw.close()
        if not records:
            raise PubMedFormatError(
                f"{self.path}: no PubMed record in this file (no PubmedArticle, PubmedBookArticle or DeleteCitation)"
            )


def _checked_root(path: str, root: etree._Element) -> etree._Element:
    if root.tag != "PubmedArticleSet":
        raise PubMedFormatError(
            f"{path}: not a PubMed XML file (its root element is <{root.tag}>, expected <PubmedArticleSet>)"
        )
    return root
