"""bioqa's ROUGE against the original ROUGE-1.5.5 Perl script (skipped without perl + XML::DOM + DB_File).

The full agreement table over all golden batches is ``benchmarks/rouge_perl_agreement.py``; here a slice of it and
hand-written irregular forms, which Porter alone stems differently from ROUGE-1.5.5's WordNet exception lookup.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bioqa.evaluation.rouge import RougeOptions, rouge_counts, tokenize
from bioqa.evaluation.rouge_reference import as_printed, perl_rouge_scores, unavailable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from rouge_perl_agreement import golden_pairs

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=f"ROUGE-1.5.5.pl cannot run: {unavailable()}")

IRREGULAR = [  # (candidate, references): irregular plurals, comparatives and verb forms
    ("The mice were better than the geese.", ["A mouse is better than a goose.", "Mice are good, geese are worse."]),
    ("These data show that children had fewer teeth.", ["The datum shows that a child has fewer tooth."]),
    ("Women ran and swam; the best analyses were done.", ["A woman runs and swims; the best analysis was done."]),
]


def _printed(rows: list[dict]) -> list[tuple]:
    return [tuple(x for m in ("rouge-2", "rouge-su4") for x in as_printed(r[m]["r"], r[m]["p"])) for r in rows]


def _perl(rows: list[dict]) -> list[tuple]:
    keys = ("rouge2_recall", "rouge2_f1", "rouge_su4_recall", "rouge_su4_f1")
    return [tuple(r[f"ideal.{k}"] for k in keys) for r in rows]


@pytest.mark.parametrize("stem", [False, True], ids=["no-stemming", "stemming"])
def test_same_printed_scores_as_the_perl_script_on_golden_pairs(shared_dir: Path, stem: bool):
    candidates, references = golden_pairs(shared_dir, limit=60)
    assert len(candidates) == 60
    ours = rouge_counts(candidates, references, RougeOptions(stem=stem))
    assert _printed(ours) == _perl(perl_rouge_scores(candidates, references, stem=stem))


def test_irregular_forms_follow_the_wordnet_exception_lists():
    candidates, references = [c for c, _ in IRREGULAR], [r for _, r in IRREGULAR]
    perl = _perl(perl_rouge_scores(candidates, references, stem=True))
    assert _printed(rouge_counts(candidates, references)) == perl
    porter_only = _printed(rouge_counts(candidates, references, RougeOptions(wordnet=False)))
    assert porter_only != perl  # the test can fail: Porter alone scores these differently
    assert tokenize("mice geese data were better") == ["mouse", "goose", "datum", "be", "well"]
