"""Bootstrap CIs and paired tests on per-question values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bioqa.evaluation.official import evaluate_phase_a, evaluate_phase_b
from bioqa.evaluation.registry import metric_spec
from bioqa.evaluation.stats import bootstrap_ci, paired_from_resamples, paired_test, pool_per_question, resample


def _yesno_rows(outcomes: list[tuple[bool, bool]]) -> list[dict]:
    """(golden is yes, answered correctly) per question."""
    return [{"index": i, "yesno.correct": float(ok), "yesno.is_yes": is_yes} for i, (is_yes, ok) in enumerate(outcomes)]


def _columns(rows: list[dict], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {k: np.asarray([[float(r[k]) for r in rows]]) for k in keys}


def test_yesno_f1_is_recomputed_from_counts_not_averaged():
    rows = _yesno_rows([(True, True), (True, True), (True, False), (False, True), (False, False)])
    # TP_yes = 2, TP_no = 1, errors = 2: F1(yes) = 4/6, F1(no) = 2/4, macro = (4/6 + 2/4) / 2
    stat = metric_spec("yesno.macro_f1")
    value = stat.statistic(_columns(rows, stat.inputs))[0]
    assert value == pytest.approx((4 / 6 + 2 / 4) / 2)
    # a resample repeating question 0 five times: only "yes" questions answered right -> F1(no) = 0 -> macro 0.5
    index = np.zeros((1, 5), dtype=int)
    resampled = {k: v[0][index] for k, v in _columns(rows, stat.inputs).items()}
    assert stat.statistic(resampled)[0] == 0.5


def test_a_nan_value_counts_as_0_in_a_mean_as_in_the_jar():
    """A question's NaN (an AP without golden items) adds 0 to a mean, in the set-level number and the resampled
    statistic alike (none of the oracle systems below has one in a mean-aggregated column)."""
    spec = metric_spec("documents.MAP")
    rows = [{"documents.ap": 1.0}, {"documents.ap": math.nan}, {"documents.ap": 0.5}]
    assert spec.compute(rows) == 0.5
    assert spec.statistic(_columns(rows, spec.inputs))[0] == 0.5


@pytest.mark.parametrize("system", ["A_noisy", "A_over10", "A_url_variants", "B_noisy", "B_yesno_variants"])
def test_statistics_reproduce_the_official_numbers(shared_dir: Path, system: str):
    golden = shared_dir / "golden/10B2_golden.json"
    path = shared_dir / f"oracle/systems/10B2/10B2__{system}.json"
    result = (evaluate_phase_a if system.startswith("A") else evaluate_phase_b)(golden, path)
    checked = 0
    for name, value in result.metrics.items():
        measure = metric_spec(name)
        rows = [r for r in result.per_question if measure.member in r]
        if not rows:
            continue
        got = measure.statistic(_columns(rows, measure.inputs))[0]
        assert got == pytest.approx(value, rel=1e-12, abs=1e-12), name
        checked += 1
    assert checked >= 10


def test_bootstrap_ci_is_seeded_and_brackets_the_estimate(shared_dir: Path):
    golden = shared_dir / "golden/11B3_golden.json"
    result = evaluate_phase_a(golden, shared_dir / "oracle/systems/11B3/11B3__A_noisy.json")
    ci = bootstrap_ci(result.per_question, result.metrics, n=1000, seed=0)
    assert ci == bootstrap_ci(result.per_question, result.metrics, n=1000, seed=0)
    assert ci != bootstrap_ci(result.per_question, result.metrics, n=1000, seed=1)
    assert "concepts.MAP" not in ci  # no golden concepts: no CI
    for name in ("documents.MAP", "documents.GMAP", "snippets.MF1", "snippets.GMAP"):
        low, high = ci[name]
        assert low < result.metrics[name] < high, name
    # more resamples than questions can tell apart: the width of the document MAP CI is about 4 standard errors
    aps = np.array([r["documents.ap"] for r in result.per_question])
    width = ci["documents.MAP"][1] - ci["documents.MAP"][0]
    assert width == pytest.approx(2 * 1.96 * aps.std() / math.sqrt(len(aps)), rel=0.2)


def test_ci_of_a_constant_measure_is_a_point():
    rows = [{"index": i, "factoid.strict": 1.0, "factoid.lenient": 1.0, "factoid.rr": 1.0} for i in range(20)]
    assert bootstrap_ci(rows, ["factoid.mrr"], n=200) == {"factoid.mrr": (1.0, 1.0)}


def test_paired_tests_identical_and_clearly_different_systems():
    rng = np.random.default_rng(0)
    good = [{"index": i, "list.precision": p, "list.recall": p, "list.f1": p} for i, p in enumerate(rng.random(60))]
    bad = [{**r, "list.f1": r["list.f1"] * 0.5} for r in good]
    same = paired_test(good, good, ["list.f1"], n=500)["list.f1"]
    assert same.delta == 0.0 and same.p_bootstrap == 1.0 and same.p_permutation == 1.0
    diff = paired_test(good, bad, ["list.f1", "list.precision"], n=500)
    assert diff["list.f1"].delta > 0.1
    assert diff["list.f1"].p_bootstrap < 0.01 and diff["list.f1"].p_permutation < 0.01
    assert diff["list.f1"].ci[0] > 0
    assert diff["list.precision"].delta == 0.0 and diff["list.precision"].p_permutation == 1.0
    swapped = paired_test(bad, good, ["list.f1"], n=500)["list.f1"]
    assert swapped.delta == pytest.approx(-diff["list.f1"].delta)


@pytest.mark.parametrize("measure", ["list.f1", "yesno.macro_f1", "documents.GMAP", "snippets.GMAP"])
def test_paired_from_resamples_is_the_paired_bootstrap(measure):
    """Two systems on the same questions: their bootstrap distributions give paired_test's CI and p bit for bit."""
    rng = np.random.default_rng(1)
    keys = {"list.f1": ("list.precision", "list.recall", "list.f1"), "yesno.macro_f1": ("yesno.correct",)}
    rows_a, rows_b = [], []
    for i in range(40):
        a, b = {"index": f"B1#{i}"}, {"index": f"B1#{i}"}
        for key in metric_spec(measure).inputs + keys.get(measure, ()):
            a[key], b[key] = (float(rng.random() < 0.5), float(rng.random() < 0.5)) if "yesno" in key else rng.random(2)
        if measure == "documents.GMAP" and i % 7 == 0:
            a[metric_spec(measure).inputs[0]] = math.nan  # a question without golden documents
        rows_a.append(a)
        rows_b.append(b)
    fast = paired_from_resamples(resample(rows_a, measure, 300, 3), resample(rows_b, measure, 300, 3))
    slow = paired_test(rows_a, rows_b, [measure], n=300, seed=3)[measure]
    assert (fast.a, fast.b, fast.delta, fast.ci, fast.p_bootstrap) == (
        slow.a,
        slow.b,
        slow.delta,
        slow.ci,
        slow.p_bootstrap,
    )
    assert fast.n_questions == slow.n_questions == 40 and fast.p_permutation is None
    assert bootstrap_ci(rows_a, [measure], 300, 3)[measure] == resample(rows_a, measure, 300, 3).ci()


@pytest.mark.parametrize(
    ("b_rows", "why"),
    [
        (lambda rows: rows[:-1], "B lacks a question"),
        (lambda rows: rows[::-1], "same questions, other order"),
        (lambda rows: [{k: v for k, v in r.items() if k != "index"} for r in rows], "no question keys"),
    ],
)
def test_paired_from_resamples_refuses_other_questions(b_rows, why):
    rows = _yesno_rows([(True, True), (False, True), (True, False)] * 5)
    a = resample([{k: v for k, v in r.items() if k != "index"} for r in rows] if "keys" in why else rows, "yesno.acc")
    assert paired_from_resamples(a, resample(b_rows(rows), "yesno.acc")) is None, why


def test_paired_test_uses_only_questions_counted_for_both():
    a = _yesno_rows([(True, True)] * 10)
    b = _yesno_rows([(True, False)] * 5)  # questions 5..9 missing from B
    result = paired_test(a, b, ["yesno.acc"], n=100)["yesno.acc"]
    assert result.n_questions == 5 and result.delta == 1.0


def test_paired_values_are_both_systems_on_the_paired_questions():
    """A is scored on the questions B also answers (not on all of A's): A, B and A − B describe the same questions."""
    a = _yesno_rows([(True, True), (True, False), (True, True)])  # A alone: accuracy 2/3
    b = _yesno_rows([(True, True), (True, True)])  # B answers questions 0 and 1 only
    result = paired_test(a, b, ["yesno.acc"], n=100)["yesno.acc"]
    assert (result.a, result.b, result.delta, result.n_questions) == (0.5, 1.0, -0.5, 2)
    assert result.a - result.b == result.delta


def test_pooling_uses_per_question_scores_not_batch_means():
    small = [{"index": i, "factoid.strict": 1.0, "factoid.lenient": 1.0, "factoid.rr": 1.0} for i in range(2)]
    large = [{"index": i, "factoid.strict": 0.0, "factoid.lenient": 0.0, "factoid.rr": 0.0} for i in range(8)]
    pooled = pool_per_question([small, large], ["factoid.mrr"], n=500)
    assert pooled.metrics == {"factoid.mrr": 0.2}  # 2 of 10 questions, not (1.0 + 0.0) / 2
    assert pooled.counts == {"factoid.mrr": 10} and pooled.batches == 2
    low, high = pooled.ci["factoid.mrr"]
    assert 0.0 <= low < 0.2 < high <= 0.6


def test_pooled_yesno_f1_is_recomputed_on_the_pooled_questions():
    one = _yesno_rows([(True, True), (True, True)])  # only yes questions: F1(no) = 0 -> macro 0.5
    two = _yesno_rows([(False, True)])  # only a no question: F1(yes) = 0 -> macro 0.5
    pooled = pool_per_question([one, two], ["yesno.macro_f1", "list.f1"], n=200)
    assert pooled.metrics == {"yesno.macro_f1": 1.0}  # both classes right once pooled; list.f1: no questions, left out
