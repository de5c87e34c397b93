"""The PubMed reader as it was before lxml (ElementTree ``iterparse`` over every element, ElementPath lookups),
kept as the differential oracle of :mod:`bioqa.retrieval.pubmed`: both must read the same citations and
deletions from the same file. Errors are not compared (only their one-line form is tested)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from bioqa.retrieval.pubmed import Citation, Deletion, _open

_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")


def _text(element: ET.Element | None) -> str:
    return "".join(element.itertext()).strip() if element is not None else ""


def join_abstract(abstract: ET.Element | None) -> str:
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


def reference_records(path: str) -> Iterator[Citation | Deletion]:
    """Every citation and deletion of a readable PubMed file, in document order."""
    with _open(path) as raw:
        root = None
        for event, element in ET.iterparse(raw, events=("start", "end")):
            root = element if root is None else root
            if event != "end":
                continue
            if element.tag in ("PubmedArticle", "PubmedBookArticle"):
                citation = _citation(element)
                if citation is not None:
                    yield citation
                element.clear()
                root.clear()
            elif element.tag == "DeleteCitation":
                yield Deletion(tuple(_text(p) for p in element.iterfind("PMID") if _text(p)))
                element.clear()
                root.clear()
