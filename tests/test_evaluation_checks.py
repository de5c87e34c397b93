"""Inputs a user surely did not mean: refused with one line (BioASQFormatError / ConfigError) or scored with a warning
(``EvaluationReport.warnings``, also on stderr). Table-driven over the cases of issue 7 item 4 and the file faults."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bioqa.data import BioASQFormatError
from bioqa.errors import BioQAError
from bioqa.evaluation import EvaluationOptions, evaluate_submission

URL = "http://www.ncbi.nlm.nih.gov/pubmed/"


def _golden(n: int = 4) -> list[dict]:
    return [
        {"id": f"q{i}", "type": "yesno", "body": f"Question {i}?", "documents": [URL + str(i)], "snippets": [],
         "exact_answer": "yes" if i % 2 else "no", "ideal_answer": [f"Answer {i} is short."]}
        for i in range(n)
    ]  # fmt: skip


def _system(ids: list[str], answer: str = "yes") -> list[dict]:
    return [{"id": i, "type": "yesno", "exact_answer": answer, "ideal_answer": "An answer."} for i in ids]


def _write(path: Path, payload) -> Path:
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def _raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


Make = Callable[[Path], tuple[Path, Path]]

REFUSED: list[tuple[str, Make, str]] = [
    ("system-is-a-list", lambda d: (_write(d / "g.json", {"questions": _golden()}), _write(d / "s.json", [])),
     "got a JSON list"),
    ("system-without-questions", lambda d: (_write(d / "g.json", {"questions": _golden()}),
                                            _write(d / "s.json", {"answers": []})), "no 'questions' list"),
    ("questions-not-a-list", lambda d: (_write(d / "g.json", {"questions": _golden()}),
                                        _write(d / "s.json", {"questions": {"id": "q1"}})), "expected a list"),
    ("golden-is-a-list", lambda d: (_write(d / "g.json", _golden()), _write(d / "s.json", {"questions": []})),
     "got a JSON list"),
    ("another-batch", lambda d: (_write(d / "g.json", {"questions": _golden()}),
                                 _write(d / "s.json", {"questions": _system(["x1", "x2"])})),
     "no question id in common"),
    ("empty-submission", lambda d: (_write(d / "g.json", {"questions": _golden()}),
                                    _write(d / "s.json", {"questions": []})), "no question id in common"),
    ("golden-duplicate-ids", lambda d: (_write(d / "g.json", {"questions": _golden() + _golden(1)}),
                                        _write(d / "s.json", {"questions": _system(["q0"])})),
     "more than once in the golden file"),
    ("swapped-golden-has-no-answers", lambda d: (_write(d / "g.json", {"questions": [{"id": "q0", "documents": []}]}),
                                                 _write(d / "s.json", {"questions": _golden()})), "swapped"),
    ("missing-file", lambda d: (_write(d / "g.json", {"questions": _golden()}), d / "absent.json"), "file not found"),
    ("directory", lambda d: (_write(d / "g.json", {"questions": _golden()}), d), "is a directory"),
    ("empty-file", lambda d: (_write(d / "g.json", {"questions": _golden()}), _raw(d / "s.json", b"")),
     "not valid JSON"),
    ("truncated", lambda d: (_write(d / "g.json", {"questions": _golden()}), _raw(d / "s.json", b'{"questions": [')),
     "not valid JSON"),
    ("not-utf8", lambda d: (_write(d / "g.json", {"questions": _golden()}),
                            _raw(d / "s.json", b'{"questions": [{"id": "q0\xff"}]}')), "not UTF-8"),
    ("nested-too-deep", lambda d: (_write(d / "g.json", {"questions": _golden()}),
                                   _raw(d / "s.json", b"[" * 100_000 + b"]" * 100_000)), "nested too deeply"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_unusable_inputs_are_refused_with_one_line(tmp_path: Path, make: Make, message: str):
    golden, system = make(tmp_path)
    with pytest.raises(BioASQFormatError) as err:
        evaluate_submission(golden, system, bootstrap=0)
    text = str(err.value)
    assert message in text and "\n" not in text
    assert str(system) in text or str(golden) in text


@pytest.mark.parametrize(
    ("options", "message"),
    [({"version": 7}, "version=7"), ({"bootstrap": -5}, "bootstrap=-5"), ({"phase": "C"}, "phase='C'")],
)
def test_bad_options_are_refused(tmp_path: Path, options: dict, message: str):
    golden = _write(tmp_path / "g.json", {"questions": _golden()})
    system = _write(tmp_path / "s.json", {"questions": _system(["q0", "q1"])})
    with pytest.raises(BioQAError, match=message):
        evaluate_submission(golden, system, **options)


def _copy_of_golden(d: Path) -> tuple[Path, Path]:
    golden = _write(d / "g.json", {"questions": _golden()})
    return golden, _write(d / "s.json", {"questions": _golden()})


def _duplicated(d: Path) -> Path:
    """q1 answered "yes" (right), then again "no" (wrong); q0 answered "no" (right)."""
    return _write(d / "s.json", {"questions": _system(["q1"]) + _system(["q1", "q0"], "no")})


def _list_ideal(d: Path) -> tuple[Path, Path]:
    gold = [{**q, "ideal_answer": q["ideal_answer"][0]} for q in _golden()]
    system = [{**q, "exact_answer": "yes", "ideal_answer": ["A list, golden style."]} for q in _golden()]
    return _write(d / "g.json", {"questions": gold}), _write(d / "s.json", {"questions": system})


WARNED: list[tuple[str, Make, str, dict]] = [
    ("few-ids-in-common", lambda d: (_write(d / "g.json", {"questions": _golden(10)}),
                                     _write(d / "s.json", {"questions": _system(["q1", "q3"])})),
     "answers only 2 of the 10 golden questions", {"yesno.acc": 1.0}),
    ("unknown-ids", lambda d: (_write(d / "g.json", {"questions": _golden(2)}),
                               _write(d / "s.json", {"questions": _system(["q0", "q1", "zz"])})),
     "1 question id(s) not in the golden file (zz)", {"yesno.acc": 0.5}),
    ("duplicate-system-ids", lambda d: (_write(d / "g.json", {"questions": _golden(2)}), _duplicated(d)),
     "only the first occurrence is scored", {"yesno.acc": 1.0}),  # the jar's numbers: q1 "yes" (first), q0 "no"
    ("system-is-the-golden-file", _copy_of_golden, "is system= the golden file?", {"yesno.acc": 1.0}),
    ("ideal-answer-styles-swapped", _list_ideal, "are golden= and system= swapped?", {"yesno.acc": 0.5}),
]  # fmt: skip


@pytest.mark.parametrize(("make", "warning", "metrics"), [c[1:] for c in WARNED], ids=[c[0] for c in WARNED])
def test_doubtful_inputs_are_scored_with_a_warning(tmp_path: Path, caplog, make: Make, warning: str, metrics: dict):
    golden, system = make(tmp_path)
    report = evaluate_submission(golden, system, bootstrap=0)
    assert any(warning in w for w in report.warnings), report.warnings
    assert any(warning in r.getMessage() for r in caplog.records)  # said on stderr too
    assert report.to_json()["warnings"] == report.warnings
    for name, value in metrics.items():
        assert report.metrics[name] == value


@pytest.mark.parametrize(
    ("selected", "warning"),
    [
        (None, "answers only 2 of the 10 golden questions"),
        (["q1", "q3"], None),
        (["q1", "q3", "q5", "q7", "q8"], "answers only 2 of the 5 golden questions"),
    ],
)
def test_coverage_is_counted_against_the_selected_questions(tmp_path: Path, selected, warning):
    golden = _write(tmp_path / "g.json", {"questions": _golden(10)})
    system = _write(tmp_path / "s.json", {"questions": _system(["q1", "q3"])})
    warnings = evaluate_submission(golden, system, bootstrap=0, selected=selected).warnings
    assert [w for w in warnings if warning and warning in w] if warning else warnings == []


@pytest.mark.parametrize(
    ("phase", "documents", "warning"),
    [
        ("A", False, "has no documents, snippets, concepts or triples: phase=A scores every question 0"),
        ("A", True, None),
        ("AB", False, None),  # AB scores what the submission holds
    ],
)
def test_phase_a_asked_of_a_submission_without_phase_a_items_is_said(tmp_path: Path, phase, documents, warning):
    golden = _write(tmp_path / "g.json", {"questions": _golden()})
    answers = [{**q, **({"documents": [URL + "1"]} if documents else {})} for q in _system(["q0", "q1", "q2", "q3"])]
    report = evaluate_submission(golden, _write(tmp_path / "s.json", {"questions": answers}), phase=phase, bootstrap=0)
    assert [w for w in report.warnings if "phase=A" in w] == ([f"{tmp_path / 's.json'} {warning}"] if warning else [])


def test_a_clean_pair_has_no_warnings(tmp_path: Path):
    golden = _write(tmp_path / "g.json", {"questions": _golden()})
    system = _write(tmp_path / "s.json", {"questions": _system(["q0", "q1", "q2", "q3"])})
    assert evaluate_submission(golden, system, bootstrap=0).warnings == []


def test_evaluation_options_defaults_are_the_official_settings():
    assert EvaluationOptions() == EvaluationOptions(enabled=True, version=9, bootstrap=1000, seed=0)
