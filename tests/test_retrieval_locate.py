"""Quotes from a model are located at exact official offsets, or dropped."""

from __future__ import annotations

import pytest

from bioqa.retrieval import locate, sentence_spans

TITLE = "Imatinib inhibits the BCR-ABL tyrosine kinase in chronic myeloid leukemia"
ABSTRACT = (
    "Chronic myeloid leukemia is driven by the BCR-ABL fusion gene created by the Philadelphia chromosome "
    "translocation t(9;22). The fusion protein is a constitutively active tyrosine kinase.      "
    "Imatinib binds the ATP-binding pocket of BCR-ABL and blocks its kinase activity. Treatment with "
    "imatinib induces durable cytogenetic responses in most patients in chronic phase."
)


def assert_valid(span) -> None:
    section = TITLE if span.section == "title" else ABSTRACT
    assert section[span.begin : span.end] == span.text
    assert span.text == span.text.strip()


@pytest.mark.parametrize(
    ("quote", "expected", "method"),
    [
        (
            "The fusion protein is a constitutively active tyrosine kinase.",
            "The fusion protein is a constitutively active tyrosine kinase.",
            "exact",
        ),
        (
            "the FUSION protein is a  constitutively\nactive Tyrosine kinase",
            "The fusion protein is a constitutively active tyrosine kinase",
            "normalized",
        ),
        ("“Imatinib inhibits the BCR‑ABL tyrosine kinase”", "Imatinib inhibits the BCR-ABL tyrosine kinase", "exact"),
        (
            "...kinase. Imatinib binds the ATP-binding pocket",
            "kinase.      Imatinib binds the ATP-binding pocket",
            "normalized",
        ),
        (
            "Imatinib blocks the kinase activity of BCR-ABL by binding its ATP pocket.",
            "Imatinib binds the ATP-binding pocket of BCR-ABL and blocks its kinase activity.",
            "fuzzy",
        ),
        (
            "Leukemia is driven by the BCR-ABL fusion gene from the Philadelphia translocation",
            ABSTRACT[: ABSTRACT.index(")") + 2],
            "fuzzy",
        ),
    ],
)
def test_quotes_are_located_at_exact_offsets(quote, expected, method):
    span = locate(quote, TITLE, ABSTRACT)
    assert span is not None and span.method == method
    assert span.text == expected
    assert_valid(span)


def test_title_quotes_get_the_title_section():
    span = locate("imatinib inhibits the bcr-abl tyrosine kinase", TITLE, ABSTRACT)
    assert (span.section, span.begin) == ("title", 0)
    assert_valid(span)


@pytest.mark.parametrize(
    "quote", ["Aspirin irreversibly inhibits COX-1.", "Imatinib is used in leukemia", "...", "", "a"]
)
def test_unrelated_or_empty_quotes_are_dropped(quote):
    assert locate(quote, TITLE, ABSTRACT) is None


def test_the_fuzzy_threshold_is_respected():
    quote = "Leukemia is driven by the BCR-ABL fusion gene from the Philadelphia translocation"
    assert locate(quote, TITLE, ABSTRACT, min_ratio=0.95) is None


def test_sentences_split_at_sentence_ends_and_padding_gaps():
    text = "First one. Second (2) here.   Third without end"
    assert [text[b:e] for b, e in sentence_spans(text)] == ["First one.", "Second (2) here.", "Third without end"]
    assert sentence_spans("   ") == []
