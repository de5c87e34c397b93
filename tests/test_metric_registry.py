"""The metric registry: every measure bioqa computes has a spec, every spec gets a CI, lookups and registration."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bioqa.evaluation import evaluate_submission, format_table
from bioqa.evaluation.official import JAR_COLUMNS
from bioqa.evaluation.registry import (
    GROUPS,
    MetricSpec,
    build_registry,
    group_member_keys,
    headline_metrics,
    iter_metrics,
    metric_names,
    metric_spec,
    ranking_metrics,
)
from bioqa.evaluation.rouge import ROUGE_KEYS


@pytest.fixture(scope="module")
def full_report(shared_dir: Path):
    """11B3 scored in all three phases: noisy phase A + noisy exact answers + a short ideal answer per question."""
    systems = shared_dir / "oracle/systems/11B3"
    system = json.loads((systems / "11B3__A_noisy.json").read_text())
    exact = {q["id"]: q for q in json.loads((systems / "11B3__B_noisy.json").read_text())["questions"]}
    for q in system["questions"]:
        if "exact_answer" in exact.get(q["id"], {}):
            q["exact_answer"] = exact[q["id"]]["exact_answer"]
        q["ideal_answer"] = "The answer is given in the abstracts of the retrieved documents."
    return evaluate_submission(shared_dir / "golden/11B3_golden.json", system, bootstrap=200)


def test_every_computed_measure_has_a_spec_and_every_spec_a_ci(full_report):
    assert full_report.phases == ["A", "B", "ideal"]
    assert list(full_report.metrics) == list(metric_names())  # every registered measure computed, in table order
    counted = {s.name for s in iter_metrics() if full_report.counts[s.group] > 0}
    assert counted and set(full_report.ci) == counted  # every measure with questions has a CI (no group forgotten)
    for name in counted:
        low, high = full_report.ci[name]
        assert low <= high and not math.isnan(low), name
    table = format_table(full_report)
    assert all(name in table for name in counted)


def test_the_bootstrap_statistic_agrees_with_the_set_level_numbers(full_report):
    for spec in iter_metrics():
        if full_report.counts[spec.group]:
            rows = [r for r in full_report.per_question if spec.member in r]
            columns = {k: np.asarray([[float(r[k]) for r in rows]]) for k in spec.inputs}
            expected = full_report.metrics[spec.name]
            assert spec.compute(full_report.per_question) == expected  # the reported number is the spec's
            if spec.name not in ("concepts.GMAP", "triples.GMAP"):  # the jar's NaN AP: the statistic counts it as 0
                assert float(spec.statistic(columns)[0]) == pytest.approx(expected, abs=1e-12), spec.name


def test_derived_constants():
    assert metric_names(phase="A") == JAR_COLUMNS["A"] and metric_names(phase="B") == JAR_COLUMNS["B"]
    assert (
        ROUGE_KEYS
        == metric_names(group="ideal")
        == (
            "ideal.rouge2_recall",
            "ideal.rouge2_f1",
            "ideal.rouge_su4_recall",
            "ideal.rouge_su4_f1",
        )
    )
    assert group_member_keys() == {
        "concepts": "concepts.ap",
        "documents": "documents.ap",
        "snippets": "snippets.ap",
        "triples": "triples.ap",
        "yesno": "yesno.correct",
        "factoid": "factoid.rr",
        "list": "list.f1",
        "ideal": "ideal.rouge2_recall",
    }
    headline = [s.name for s in headline_metrics()]
    for official in ("documents.MAP", "snippets.MF1", "yesno.macro_f1", "factoid.mrr", "list.f1", "ideal.rouge2_f1"):
        assert official in headline
    assert "documents.GMAP" not in headline and "yesno.f1_no" not in headline
    assert [GROUPS[s.group] for s in headline_metrics()] == sorted(
        (GROUPS[s.group] for s in headline_metrics()), key=["A", "B", "ideal"].index
    )
    assert all(s.higher_is_better for s in iter_metrics())
    assert metric_spec("documents.GMAP").inputs == ("documents.ap",)
    assert metric_spec("yesno.f1_yes").inputs == ("yesno.correct", "yesno.is_yes")
    assert [s.name for s in ranking_metrics()] == [
        "yesno.macro_f1",
        "factoid.mrr",
        "list.f1",
        "ideal.rouge_su4_f1",
        "ideal.rouge2_f1",
        "documents.MAP",
        "snippets.MF1",
    ]
    assert all(s.headline for s in ranking_metrics())


@pytest.mark.parametrize(
    ("name", "empty"),
    [("documents.MPrec", 0.0), ("documents.MAP", math.nan), ("snippets.GMAP", 0.0), ("yesno.acc", 0.0)],
)
def test_a_measure_without_questions_is_what_the_jar_prints(name, empty):
    value = metric_spec(name).compute([{"id": "q", "index": 0, "type": "summary"}])
    assert value == empty or (math.isnan(value) and math.isnan(empty))


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (MetricSpec("list.f1", "list", "list.f1", ("list.f1",), "mean", lambda c: c["list.f1"]), "defined twice"),
        (MetricSpec("x.y", "nope", "x.y", ("x.y",), "mean", lambda c: c["x.y"]), "unknown group"),
    ],
)
def test_bad_measures_are_refused(spec, error):
    with pytest.raises(ValueError, match=error):
        build_registry([*iter_metrics(), spec])


def test_unknown_metric_names_the_known_ones():
    with pytest.raises(KeyError, match=r"documents\.MAP"):
        metric_spec("documents.map")
