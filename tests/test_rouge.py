"""ROUGE-2 / ROUGE-SU4 on hand-computed examples; the tokeniser and ROUGE-1.5.5's Porter stemmer."""

from __future__ import annotations

import math

import pytest

from bioqa.evaluation.registry import metric_spec
from bioqa.evaluation.rouge import RougeOptions, porter_stem, rouge_scores, tokenize

NO_STEM = RougeOptions(stem=False)


def test_tokenize_like_rouge_155():
    # "-" becomes its own token and is then dropped (tokens must start with [a-z0-9$]); non-ASCII letters split.
    assert tokenize("IL-6 levels, β-Cells!", NO_STEM) == ["il", "6", "levels", "cells"]
    # Porter stemming only for tokens longer than 3 characters ("cats" -> "cat", "was" untouched).
    assert tokenize("The cats was running", RougeOptions()) == ["the", "cat", "was", "run"]
    assert tokenize("the cat and the dog", RougeOptions(stopwords=frozenset({"the", "and"}))) == ["cat", "dog"]


@pytest.mark.parametrize(
    ("word", "stem"),
    [
        ("caresses", "caress"),
        ("ponies", "poni"),
        ("relational", "relat"),
        ("generalizations", "gener"),
        ("hopping", "hop"),
        ("agreed", "agre"),
        ("filing", "file"),
        ("happy", "happi"),
        ("yelling", "yell"),
        ("replacement", "replac"),  # ROUGE's 2004 change: -ement tried before -ment
        ("adjustment", "adjust"),
    ],
)
def test_porter_stemmer_of_rouge_155(word, stem):
    assert porter_stem(word) == stem


def test_single_reference_counts():
    # candidate: the cat sat on the mat     reference: the cat lay on the mat   (6 tokens each)
    # bigrams: 5 each; common: "the cat", "on the", "the mat" -> 3   => R2 recall = P = F = 3/5
    # SU4: skip-bigrams with <= 4 words between = all 15 pairs of 6 tokens, + unigrams without the last token (5)
    #   -> 20 each. Common pairs (none with sat/lay): (the,cat) (the,on) (the,the) (the,mat)x2 (cat,on) (cat,the)
    #   (cat,mat) (on,the) (on,mat) = 10; common unigrams of "the cat sat on the" / "the cat lay on the":
    #   the x2, cat, on = 4  => 14 / 20
    [s] = rouge_scores(["the cat sat on the mat"], [["the cat lay on the mat"]], NO_STEM)
    assert s["ideal.rouge2_recall"] == pytest.approx(3 / 5)
    assert s["ideal.rouge2_f1"] == pytest.approx(3 / 5)
    assert s["ideal.rouge_su4_recall"] == pytest.approx(14 / 20)
    assert s["ideal.rouge_su4_f1"] == pytest.approx(14 / 20)


def test_multi_reference_sums_counts_over_references():
    # second reference "a dog sat": bigrams "a dog", "dog sat" (2), no hit; SU4 units: (a,dog) (a,sat) (dog,sat)
    # + unigrams a, dog = 5, no hit. ROUGE-1.5.5 -f A sums hits and counts over references:
    #   R2 recall = (3 + 0) / (5 + 2); precision = (3 + 0) / (5 + 5)
    #   SU4 recall = (14 + 0) / (20 + 5); precision = 14 / (20 + 20)
    [s] = rouge_scores(["the cat sat on the mat"], [["the cat lay on the mat", "a dog sat"]], NO_STEM)
    r2_r, r2_p = 3 / 7, 3 / 10
    su_r, su_p = 14 / 25, 14 / 40
    assert s["ideal.rouge2_recall"] == pytest.approx(r2_r)
    assert s["ideal.rouge2_f1"] == pytest.approx(2 * r2_p * r2_r / (r2_p + r2_r))
    assert s["ideal.rouge_su4_recall"] == pytest.approx(su_r)
    assert s["ideal.rouge_su4_f1"] == pytest.approx(2 * su_p * su_r / (su_p + su_r))


def test_skip_gap_limits_skip_bigrams():
    # "a b c d e f g" vs "a g": with gap 4, (a, g) (6 positions apart) is not a unit; with gap 5 it is.
    # reference "a g": units (a,g) + unigram a -> 2; the candidate always shares the unigram "a".
    [near] = rouge_scores(["a b c d e f g"], [["a g"]], RougeOptions(stem=False, skip_gap=4))
    [far] = rouge_scores(["a b c d e f g"], [["a g"]], RougeOptions(stem=False, skip_gap=5))
    assert near["ideal.rouge_su4_recall"] == pytest.approx(1 / 2)
    assert far["ideal.rouge_su4_recall"] == pytest.approx(2 / 2)


def test_stemming_makes_inflections_match():
    # "cells running" vs "cell runs": stemmed both are "cell run" -> the only bigram matches.
    assert rouge_scores(["cells running"], [["cell runs"]])[0]["ideal.rouge2_recall"] == 1.0
    assert rouge_scores(["cells running"], [["cell runs"]], NO_STEM)[0]["ideal.rouge2_recall"] == 0.0


def test_empty_candidate_and_mean():
    rows = rouge_scores(["", "the cat sat"], [["the cat sat"], ["the cat sat"]])
    assert rows[0]["ideal.rouge2_recall"] == 0.0 and rows[1]["ideal.rouge2_recall"] == 1.0
    assert metric_spec("ideal.rouge2_recall").compute(rows) == 0.5  # the corpus score is the mean
    assert math.isnan(metric_spec("ideal.rouge_su4_f1").compute([]))  # no questions: NaN (null in metrics.json)
