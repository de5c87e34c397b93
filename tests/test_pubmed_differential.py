"""Differential test of the PubMed reader: the lxml reader of :mod:`bioqa.retrieval.pubmed` and the
ElementTree reader it replaced (``pubmed_reference``) read the same citations and deletions from the same
files — NLM's tricky parts (DOCTYPE, structured abstracts, inline markup, MedlineDate, versions, books,
DeleteCitation) and XML's (entities, CDATA, comments, namespaces, odd nesting)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from pubmed_reference import reference_records

from bioqa.retrieval.pubmed import Citation, Deletion, PubMedFile, PubMedFormatError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pubmed"
NLM_PROLOG = (
    '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
    '1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
)


def article(pmid: str, inside: str = "", around: str = "", version: str = ' Version="1"') -> str:
    """A ``PubmedArticle``: ``inside`` its ``Article``, ``around`` after the ``Article``."""
    return (
        f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID{version}>{pmid}</PMID>'
        f"<Article>{inside}</Article>{around}</MedlineCitation></PubmedArticle>\n"
    )


def issue(inside: str) -> str:
    return f"<Journal><JournalIssue>{inside}</JournalIssue></Journal>"


CASES = {
    "structured_abstract": article(
        "1",
        "<ArticleTitle>Trial</ArticleTitle><Abstract>"
        '<AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">Why <i>this</i>.</AbstractText>'
        '<AbstractText Label="  METHODS ">How.</AbstractText><AbstractText Label="EMPTY"></AbstractText>'
        '<AbstractText Label="">Unlabelled.</AbstractText><AbstractText>\n  Plain part.\n</AbstractText>'
        "<CopyrightInformation>© 2020</CopyrightInformation></Abstract>",
    ),
    "inline_markup": article(
        "2",
        "<ArticleTitle>CO<sub>2</sub> and Ca<sup>2+</sup> in <i>E. coli<b> K-12</b></i> cells</ArticleTitle>"
        '<Abstract><AbstractText>Area <mml:math xmlns:mml="http://www.w3.org/1998/Math/MathML"><mml:mi>x</mml:mi>'
        "<mml:msup><mml:mn>10</mml:mn><mml:mn>3</mml:mn></mml:msup></mml:math> mm, <u>p</u> &lt; 0.05.</AbstractText>"
        "</Abstract>",
    ),
    "entities_cdata_comments": article(
        "3",
        "<ArticleTitle>&#x3b2;-blockers &#946; <![CDATA[a<b & c]]> d<!-- comment --> e<?pi x?> f 𝛽 "
        "&amp;lt; São</ArticleTitle><Abstract><AbstractText><!-- only a comment --></AbstractText></Abstract>",
    ),
    "dates": "".join(
        [
            article("4", issue("<PubDate><MedlineDate>1998 Dec-1999 Jan</MedlineDate></PubDate>")),
            article("5", issue("<PubDate><MedlineDate>Winter 2003</MedlineDate></PubDate>")),
            article("6", issue("<PubDate><Year>19xx</Year><MedlineDate>1987</MedlineDate></PubDate>")),
            article("7", '<ArticleDate DateType="Electronic"><Year>2011</Year></ArticleDate>'),
            article("8", issue("<PubDate><Season>Spring</Season></PubDate>")),
            article("9", "<Journal><PubDate><Year>1975</Year></PubDate></Journal>"),
            article("10", issue("<Volume>3</Volume>")),
        ]
    ),
    "versions": "".join(
        [
            article("11", "<ArticleTitle>v2</ArticleTitle>", version=' Version="2"'),
            article("11", "<ArticleTitle>v1</ArticleTitle>"),
            article("12", "<ArticleTitle>no version</ArticleTitle>", version=""),
            article("13", "<ArticleTitle>odd version</ArticleTitle>", version=' Version="a"'),
            article("  14\n", "<ArticleTitle>spaced</ArticleTitle>"),
            article("", "<ArticleTitle>no PMID: skipped</ArticleTitle>"),
        ]
    ),
    "mesh": article(
        "15",
        "<ArticleTitle>MeSH</ArticleTitle>",
        '<MeshHeadingList><MeshHeading><DescriptorName UI="D1" MajorTopicYN="Y">Humans</DescriptorName>'
        "<QualifierName>drug therapy</QualifierName></MeshHeading><MeshHeading><DescriptorName> </DescriptorName>"
        "</MeshHeading><MeshHeading><DescriptorName>Neoplasms, <i>Germ</i> Cell</DescriptorName></MeshHeading>"
        "</MeshHeadingList><CommentsCorrectionsList><MeshHeadingList><MeshHeading><DescriptorName>Nested"
        "</DescriptorName></MeshHeading></MeshHeadingList></CommentsCorrectionsList>",
    ),
    "books": (
        '<PubmedBookArticle><BookDocument><PMID Version="1">16</PMID><ArticleTitle>Chapter</ArticleTitle>'
        "<Book><PubDate><Year>2010</Year></PubDate><BookTitle>Book</BookTitle></Book>"
        '<Abstract><AbstractText Label="SUMMARY">S.</AbstractText></Abstract></BookDocument></PubmedBookArticle>\n'
        '<PubmedBookArticle><BookDocument><PMID Version="1">17</PMID><Book><Publisher>P</Publisher></Book>'
        "<Book><BookTitle>Second <i>book</i> title</BookTitle><PubDate><MedlineDate>2001-2002</MedlineDate>"
        "</PubDate></Book></BookDocument></PubmedBookArticle>\n"
        "<PubmedBookArticle><PubmedBookData/></PubmedBookArticle>\n"
    ),
    "deletions": (
        article("18", "<ArticleTitle>kept</ArticleTitle>")
        + '<DeleteCitation><PMID Version="1">18</PMID><PMID>  </PMID><PMID>19</PMID></DeleteCitation>\n'
        + "<DeleteCitation></DeleteCitation>\n"
    ),
    "odd_structure": (
        '<PubmedArticle><MedlineCitation><PMID Version="1">20</PMID></MedlineCitation></PubmedArticle>\n'
        '<PubmedArticle><PubmedData><PMID Version="1">21</PMID></PubmedData></PubmedArticle>\n'
        "<Wrapper>"
        + article("22", "<ArticleTitle>nested record</ArticleTitle>")
        + "</Wrapper>\r\n"
        + article("23", "<ArticleTitle>line\r\nbreaks\tand  spaces</ArticleTitle>")
        + "<PubmedArticleSet><PubmedArticleSet/>"
        + article("25", "<ArticleTitle>in a nested set</ArticleTitle>")
        + "</PubmedArticleSet>\n"
    ),
}


def write(tmp_path: Path, name: str, body: str, prolog: str = NLM_PROLOG) -> list[Path]:
    xml = f"{prolog}<PubmedArticleSet>\n{body}</PubmedArticleSet>\n".encode()
    plain, packed = tmp_path / f"{name}.xml", tmp_path / f"{name}.xml.gz"
    plain.write_bytes(xml)
    packed.write_bytes(gzip.compress(xml))
    return [plain, packed]


def assert_same(path: Path) -> list[Citation | Deletion]:
    read = list(PubMedFile(path))
    assert read == list(reference_records(str(path)))
    assert read, "nothing read: the comparison proves nothing"
    return read


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_lxml_reader_reads_what_the_elementtree_reader_read(name, tmp_path):
    for path in write(tmp_path, name, CASES[name]):
        assert_same(path)


def test_an_internal_dtd_entity_is_expanded_alike(tmp_path):
    prolog = '<?xml version="1.0"?>\n<!DOCTYPE PubmedArticleSet [<!ENTITY drug "imatinib mesylate">]>\n'
    body = article("24", "<ArticleTitle>&drug; in CML</ArticleTitle>")
    for path in write(tmp_path, "internal_entity", body, prolog):
        assert [c.title for c in assert_same(path)] == ["imatinib mesylate in CML"]


@pytest.mark.parametrize("name", ["pubmed26n0001.xml", "pubmed26n0002.xml"])
def test_the_fixture_files_read_alike(name, tmp_path):
    packed = tmp_path / f"{name}.gz"
    packed.write_bytes(gzip.compress((FIXTURES / name).read_bytes()))
    assert assert_same(FIXTURES / name) == assert_same(packed)


def test_the_cases_exercise_what_they_name(tmp_path):
    """A few values pinned, so that a reference reader that drifted along with the new one is caught."""
    read = {name: list(PubMedFile(write(tmp_path, name, body)[1])) for name, body in CASES.items()}
    structured = read["structured_abstract"][0].abstract
    assert structured == "BACKGROUND: Why this.METHODS: How.Unlabelled.Plain part."
    assert read["inline_markup"][0].title == "CO2 and Ca2+ in E. coli K-12 cells"
    assert read["entities_cdata_comments"][0].title == "β-blockers β a<b & c d e f 𝛽 &lt; São"
    assert [c.year for c in read["dates"]] == [1998, 2003, 1987, 2011, None, 1975, None]
    assert [(c.pmid, c.version) for c in read["versions"]] == [("11", 2), ("11", 1), ("12", 1), ("13", 1), ("14", 1)]
    assert read["mesh"][0].mesh == ("Humans", "Neoplasms, Germ Cell", "Nested")
    assert [(c.title, c.year) for c in read["books"]] == [("Chapter", 2010), ("Second book title", None)]
    assert read["deletions"][1:] == [Deletion(("18", "19")), Deletion(())]
    assert [c.pmid for c in read["odd_structure"]] == ["20", "22", "23", "25"]


def test_a_set_of_empty_sets_holds_no_record(tmp_path):
    path = write(tmp_path, "nested_sets", "<PubmedArticleSet><PubmedArticleSet/></PubmedArticleSet>")[0]
    with pytest.raises(PubMedFormatError, match="no PubMed record in this file"):
        list(PubMedFile(path))
    assert list(reference_records(str(path))) == []
