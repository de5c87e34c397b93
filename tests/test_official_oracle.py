"""The official measures against the jar's own outputs (``shared/bioasq/oracle/cases.json``), plus micro cases.

Every oracle case is checked number by number (to 1e-9; ``"NaN"`` must be NaN) and every rejected case must raise
:class:`SubmissionRejected`. The micro tests below use small golden/system dicts written for these tests.
"""

from __future__ import annotations

import json
import math
import os
from functools import cache
from pathlib import Path

import pytest
from helpers import assert_registry_is_the_jar

from bioqa.data import BioASQFormatError
from bioqa.evaluation.official import (
    JAR_COLUMNS,
    SubmissionRejected,
    evaluate_official,
    evaluate_phase_a,
    evaluate_phase_b,
)

_SHARED = Path(os.environ.get("BIOQA_SHARED", Path(__file__).resolve().parents[1].parent / "shared" / "bioasq"))
_CASES_FILE = _SHARED / "oracle" / "cases.json"
_CASE_IDS = [c["id"] for c in json.loads(_CASES_FILE.read_text())] if _CASES_FILE.is_file() else ["no-oracle"]


@cache
def _cases(shared: Path) -> dict[str, dict]:
    return {c["id"]: c for c in json.loads((shared / "oracle" / "cases.json").read_text())}


def _close(expected, got: float) -> bool:
    if expected == "NaN":
        return math.isnan(got)
    return abs(got - expected) <= 1e-9


@pytest.mark.parametrize("case_id", _CASE_IDS)
def test_oracle_case(shared_dir: Path, case_id: str):
    case = _cases(shared_dir)[case_id]
    golden, system = shared_dir / case["golden"], shared_dir / case["system"]
    if case["rejected"]:
        with pytest.raises(SubmissionRejected) as err:
            evaluate_official(golden, system, case["phase"], case["version"])
        assert str(system.name) in str(err.value) or str(golden.name) in str(err.value)
        return
    result = evaluate_official(golden, system, case["phase"], case["version"])
    assert list(case["expected"]) == list(JAR_COLUMNS[case["phase"]]) == list(result.metrics)
    wrong = {k: (v, result.metrics[k]) for k, v in case["expected"].items() if not _close(v, result.metrics[k])}
    assert not wrong, wrong
    assert_registry_is_the_jar(result)


def test_oracle_has_all_cases(shared_dir: Path):
    cases = _cases(shared_dir)
    assert len(cases) >= 450
    assert sum(c["rejected"] for c in cases.values()) >= 72


def test_per_question_values_average_to_set_level(shared_dir: Path):
    """Set-level MAP / MF1 / accuracy are the plain means of the returned per-question values."""
    a = evaluate_phase_a(shared_dir / "golden/11B3_golden.json", shared_dir / "oracle/systems/11B3/11B3__A_noisy.json")
    for group in ("documents", "snippets"):
        aps = [r[f"{group}.ap"] for r in a.per_question if f"{group}.ap" in r]
        assert a.metrics[f"{group}.MAP"] == pytest.approx(sum(aps) / len(aps), abs=1e-12)
        f1s = [r[f"{group}.f1"] for r in a.per_question if f"{group}.f1" in r]
        assert a.metrics[f"{group}.MF1"] == pytest.approx(sum(f1s) / len(f1s), abs=1e-12)
        gmap = math.exp(sum(math.log(x + 1e-5) for x in aps) / len(aps))
        assert a.metrics[f"{group}.GMAP"] == pytest.approx(gmap, rel=1e-12)
    b = evaluate_phase_b(shared_dir / "golden/11B3_golden.json", shared_dir / "oracle/systems/11B3/11B3__B_noisy.json")
    rr = [r["factoid.rr"] for r in b.per_question if "factoid.rr" in r]
    assert b.metrics["factoid.mrr"] == pytest.approx(sum(rr) / len(rr), abs=1e-12)


# ----------------------------------------------------------------------------- micro cases (hand-written data)

URL = "http://www.ncbi.nlm.nih.gov/pubmed/"


def _doc(i: int) -> str:
    return f"{URL}{1000 + i}"


def _snip(doc: str, begin: int, end: int, section: str = "abstract", **extra) -> dict:
    return {
        "document": doc,
        "text": "x" * max(end - begin, 0),
        "beginSection": section,
        "endSection": section,
        "offsetInBeginSection": begin,
        "offsetInEndSection": end,
        **extra,
    }


def _q(qid: str, qtype: str = "factoid", **fields) -> dict:
    return {"id": qid, "type": qtype, "body": f"question {qid}?", **fields}


def _file(*questions: dict) -> dict:
    return {"questions": list(questions)}


def test_documents_deduplicated_and_ap_not_capped():
    golden = _file(_q("q1", documents=[_doc(i) for i in range(12)]))
    system = _file(_q("q1", documents=[_doc(i) for i in range(12)] + [_doc(0), _doc(1)]))
    # 12 relevant documents at ranks 1..12 (duplicates dropped at read time): sum of P@r = 12.
    assert evaluate_phase_a(golden, system, 9).metrics["documents.MAP"] == pytest.approx(12 / 10)  # / min(10, 12)
    assert evaluate_phase_a(golden, system, 5).metrics["documents.MAP"] == pytest.approx(12 / 10)  # / 10
    assert evaluate_phase_a(golden, system, 2).metrics["documents.MAP"] == pytest.approx(12 / 12)  # / |golden|
    assert evaluate_phase_a(golden, system, 9).metrics["documents.MPrec"] == 1.0
    assert evaluate_phase_a(golden, system, 9).metrics["documents.GMAP"] == pytest.approx(1.2 + 1e-5)


def test_ap_divisor_min_10_golden_with_version_5_vs_8():
    golden = _file(_q("q1", documents=[_doc(1), _doc(2)]))
    system = _file(_q("q1", documents=[_doc(9), _doc(1)]))  # hit at rank 2: P@2 = 1/2
    assert evaluate_phase_a(golden, system, 8).metrics["documents.MAP"] == pytest.approx(0.5 / 2)
    assert evaluate_phase_a(golden, system, 5).metrics["documents.MAP"] == pytest.approx(0.5 / 10)
    assert evaluate_phase_a(golden, system, 9).metrics["documents.MRec"] == pytest.approx(0.5)


def test_document_urls_must_match_exactly():
    golden = _file(_q("q1", documents=[_doc(1), _doc(2), _doc(3), _doc(4)]))
    system = _file(_q("q1", documents=["https://pubmed.ncbi.nlm.nih.gov/1001/", "1002", _doc(3) + " ", _doc(4)]))
    assert evaluate_phase_a(golden, system).metrics["documents.MPrec"] == pytest.approx(0.25)


def test_snippet_offsets_inclusive_and_touching_pieces_merge():
    golden = _file(_q("q1", documents=[_doc(1)], snippets=[_snip(_doc(1), 0, 9)]))
    exact = _file(_q("q1", snippets=[_snip(_doc(1), 0, 9)]))
    assert evaluate_phase_a(golden, exact).metrics["snippets.MF1"] == 1.0
    touching = _file(_q("q1", snippets=[_snip(_doc(1), 0, 5), _snip(_doc(1), 5, 9)]))  # [0,5] and [5,9] share 5
    assert evaluate_phase_a(golden, touching).metrics["snippets.MAP"] == 1.0
    adjacent = _file(_q("q1", snippets=[_snip(_doc(1), 0, 4), _snip(_doc(1), 5, 9)]))  # not merged: two hits
    result = evaluate_phase_a(golden, adjacent)
    assert result.metrics["snippets.MAP"] == 2.0  # P@1 = 5/5, P@2 = 10/10, divided by min(10, 1)
    assert result.metrics["snippets.MPrec"] == 1.0 and result.metrics["snippets.MRec"] == 1.0


def test_snippet_relevance_ignores_character_overlap():
    golden = _file(_q("q1", documents=[_doc(1)], snippets=[_snip(_doc(1), 0, 9)]))
    system = _file(_q("q1", snippets=[_snip(_doc(1), 0, 9), _snip(_doc(1), 100, 104)]))
    # rank 1: 10/10 = 1; rank 2 overlaps nothing but is from a golden document: P@2 = 10 / (10 + 5), relevant.
    assert evaluate_phase_a(golden, system).metrics["snippets.MAP"] == pytest.approx(1 + 10 / 15)
    assert evaluate_phase_a(golden, system).metrics["snippets.MPrec"] == pytest.approx(10 / 15)


def test_snippet_precision_matches_last_url_segment_but_ap_full_url():
    golden = _file(_q("q1", documents=[_doc(1)], snippets=[_snip(_doc(1), 0, 9)]))
    system = _file(_q("q1", snippets=[_snip("https://pubmed.ncbi.nlm.nih.gov/1001/", 0, 9)]))
    metrics = evaluate_phase_a(golden, system).metrics
    assert metrics["snippets.MF1"] == 1.0 and metrics["snippets.MAP"] == 0.0


def test_snippet_section_zero_overlaps_abstract():
    golden = _file(_q("q1", documents=[_doc(1)], snippets=[_snip(_doc(1), 0, 9, "abstract")]))
    system = _file(_q("q1", snippets=[_snip(_doc(1), 0, 9, "sections.0")]))  # cut to "0" after the first "."
    assert evaluate_phase_a(golden, system).metrics["snippets.MPrec"] == 1.0


def test_phase_a_skips_unanswered_questions_and_nan_rules():
    golden = _file(_q("q1", documents=[_doc(1)]), _q("q2", documents=[_doc(2)]))
    one = evaluate_phase_a(golden, _file(_q("q1", documents=[_doc(1)])))
    assert one.metrics["documents.MAP"] == 1.0 and [r["id"] for r in one.per_question] == ["q1"]
    none = evaluate_phase_a(golden, _file(_q("q3", documents=[_doc(1)]))).metrics
    assert none["documents.MPrec"] == 0.0 and math.isnan(none["documents.MF1"]) and math.isnan(none["documents.GMAP"])
    assert math.isnan(none["snippets.MAP"]) and none["snippets.GMAP"] == 0.0


def test_yesno_substring_parsing_and_f1_counts_every_error_twice():
    golden = _file(*[_q(f"y{i}", "yesno", exact_answer="yes") for i in range(3)], _q("n1", "yesno", exact_answer="no"))
    system = _file(
        _q("y0", "yesno", exact_answer="Yes, it is."),  # -> yes (correct)
        _q("y1", "yesno", exact_answer="unknown"),  # contains "no" -> no (wrong)
        _q("y2", "yesno", exact_answer="maybe"),  # -> none (wrong)
        _q("n1", "yesno", exact_answer="NO"),  # -> no (correct)
    )
    m = evaluate_phase_b(golden, system).metrics
    assert m["yesno.acc"] == 0.5
    assert m["yesno.f1_yes"] == pytest.approx(2 * 1 / (2 * 1 + 2))  # TP_yes = 1, errors = 2
    assert m["yesno.f1_no"] == pytest.approx(2 * 1 / (2 * 1 + 2))
    assert m["yesno.macro_f1"] == pytest.approx(0.5)


def test_yesno_perfect_without_no_questions_gives_macro_half():
    golden = _file(_q("y0", "yesno", exact_answer="yes"), _q("y1", "yesno", exact_answer="yes"))
    m = evaluate_phase_b(golden, golden).metrics
    assert (m["yesno.acc"], m["yesno.f1_yes"], m["yesno.f1_no"], m["yesno.macro_f1"]) == (1.0, 1.0, 0.0, 0.5)


def test_factoid_ranks_unlimited_empty_inner_lists_vanish_and_system_synonyms_ignored():
    golden = _file(_q("f1", exact_answer=[["Aspirin", "ASA"]]), _q("f2", exact_answer=[["x"]]))
    system = _file(
        _q("f1", exact_answer=[[], ["b"], ["c"], ["d"], ["e"], ["f"], ["asa"]]),  # rank 6 after dropping []
        _q("f2", exact_answer=[["wrong", "x"]]),  # only the first string of an inner list counts
    )
    result = evaluate_phase_b(golden, system)
    assert result.metrics["factoid.strict_acc"] == 0.0
    assert result.metrics["factoid.lenient_acc"] == 0.5
    assert result.metrics["factoid.mrr"] == pytest.approx((1 / 6 + 0) / 2)
    assert evaluate_phase_b(golden, system, 3).metrics["factoid.lenient_acc"] == 1.0  # -e 3 uses system synonyms


def test_list_duplicates_are_false_positives_and_matching_is_greedy():
    golden = _file(_q("l1", "list", exact_answer=[["a", "alpha"], ["b"]]))
    system = _file(_q("l1", "list", exact_answer=[["A"], ["alpha"], ["b"], ["z"]]))
    row = evaluate_phase_b(golden, system).per_question[0]
    assert row["list.precision"] == pytest.approx(2 / 4)  # "alpha" finds its golden item already consumed
    assert row["list.recall"] == 1.0
    assert row["list.f1"] == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_only_lower_casing_no_trimming():
    golden = _file(_q("f1", exact_answer=[["aspirin"]]))
    for answer, hit in (("ASPIRIN", 1.0), (" aspirin", 0.0), ("aspirin.", 0.0)):
        assert evaluate_phase_b(golden, _file(_q("f1", exact_answer=[[answer]]))).metrics["factoid.mrr"] == hit


def test_golden_type_decides_and_is_case_sensitive_first_duplicate_wins():
    golden = _file(_q("y1", "yesno", exact_answer="yes"), _q("y2", "YesNo", exact_answer="yes"))
    system = _file(
        _q("y1", "factoid", exact_answer="no"),  # the system's type is ignored
        _q("y1", "yesno", exact_answer="yes"),  # later duplicates are ignored
        _q("y2", "yesno", exact_answer="yes"),  # golden type "YesNo" is no type: dropped
    )
    result = evaluate_phase_b(golden, system)
    assert result.metrics["yesno.acc"] == 0.0 and len([r for r in result.per_question if "yesno.correct" in r]) == 1


def test_missing_questions_skipped_with_9_rejected_with_8():
    golden = _file(_q("f1", exact_answer=[["a"]]), _q("f2", exact_answer=[["b"]]))
    system = _file(_q("f1", exact_answer=[["a"]]))
    assert evaluate_phase_b(golden, system, 9).metrics["factoid.strict_acc"] == 1.0
    with pytest.raises(SubmissionRejected, match="f2"):
        evaluate_phase_b(golden, system, 8)


@pytest.mark.parametrize(
    ("question", "field"),
    [
        (_q("f1", exact_answer=["a", "b"]), "exact_answer"),  # flat list
        (_q("f1", exact_answer=None), "exact_answer"),  # null
        (_q("f1", snippets=[_snip(_doc(1), 0, 9, score=0.5)]), "snippets[0].score"),  # extra snippet key
        (_q("y1", "yesno", exact_answer=[]), "exact_answer"),  # yes/no as []
        (_q("y1", "yesno", exact_answer=[["yes"]]), "exact_answer"),  # yes/no as list of lists
    ],
)
def test_inputs_that_crash_the_jar_are_rejected_with_file_question_and_field(question, field, tmp_path):
    golden = _file(_q("f1", exact_answer=[["a"]]), _q("y1", "yesno", exact_answer="yes"))
    path = tmp_path / "submission.json"
    path.write_text(json.dumps(_file(question)))
    with pytest.raises(SubmissionRejected) as err:
        evaluate_official(golden, path, "B")
    message = str(err.value)
    assert str(path) in message and question["id"] in message and field in message
    assert isinstance(err.value, BioASQFormatError)


def test_unsupported_version_and_phase():
    with pytest.raises(ValueError, match="version"):
        evaluate_phase_b(_file(), _file(), 7)
    with pytest.raises(ValueError, match="phase"):
        evaluate_official(_file(), _file(), "C")


def test_input_dicts_are_not_modified():
    golden = _file(_q("l1", "list", exact_answer=[["a"], ["b"]], snippets=[_snip(_doc(1), 0, 5), _snip(_doc(1), 3, 9)]))
    before = json.dumps(golden)
    evaluate_official(golden, golden, "A")
    evaluate_official(golden, golden, "B")
    assert json.dumps(golden) == before
