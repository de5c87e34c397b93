"""The sweep report on fixture run directories scored by the real official measures (no model calls)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bioqa.analysis.baselines import majority_yesno, snippet_entities
from bioqa.analysis.plots import MAX_SERIES, _top_series, pareto_front
from bioqa.analysis.report import COLUMNS, POOLED, build_report, holm
from bioqa.analysis.synthetic import replicate_golden, synthetic_run
from bioqa.errors import BioQAError, ConfigError
from bioqa.evaluation.stats import paired_test
from bioqa.resources import demo_golden_path
from bioqa.rundir import read_metrics

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [("synthetic-a", 0, 0.2, 0.4), ("synthetic-a", 3, 0.7, 0.0), ("synthetic-b", 0, 0.5, 0.1)]


def make_sweep(root: Path) -> Path:
    """3 configurations × 2 batches of different sizes (16 and 32 questions)."""
    goldens = [
        replicate_golden(demo_golden_path(), root / "golden" / "DEMO1_golden.json", 1),
        replicate_golden(demo_golden_path(), root / "golden" / "DEMO2_golden.json", 2),
    ]
    for model, shots, skill, pfr in CONFIGS:
        for golden in goldens:
            synthetic_run(
                root / "sweep" / f"{model}_{shots}_{golden.stem}", golden, model, shots, skill, pfr,
                usd_per_question=0.01 if model.endswith("b") else 0.0, bootstrap=50,
            )  # fmt: skip
    return root / "sweep"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return make_sweep(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def report(sweep: Path, tmp_path_factory):
    return build_report(sweep, out_dir=tmp_path_factory.mktemp("out"), reference="synthetic-a 0-shot", bootstrap=200)


def test_report_files(report):
    out = report.out_dir
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == list(COLUMNS)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet")[["value"]], results[["value"]])
    assert set(results["batch"]) == {"DEMO1", "DEMO2", POOLED}
    assert set(results["config"]) == {"synthetic-a 0-shot", "synthetic-a 3-shot", "synthetic-b 0-shot", "baseline"}
    assert {"yesno.macro_f1", "factoid.mrr", "list.f1", "ideal.rouge_su4_f1"} <= set(results["measure"])
    markdown = (out / "report.md").read_text()
    assert "## Pooled over batches" in markdown and "## Batch DEMO2" in markdown and "**" in markdown
    for name in ("shot_curves", "cost_latency", "parse_failures", "forest"):
        assert (out / f"{name}.png").stat().st_size > 10_000
        assert f"({name}.png)" in markdown


def test_run_rows_carry_attribution(report, sweep):
    row = report.results.query("config == 'synthetic-b 0-shot' and batch == 'DEMO1' and measure == 'factoid.mrr'")
    assert len(row) == 1
    row = row.iloc[0]
    metrics = read_metrics(sweep / "synthetic-b_0_DEMO1_golden")
    assert row["value"] == pytest.approx(metrics.measures["factoid.mrr"])
    assert [row["ci_low"], row["ci_high"]] == pytest.approx(metrics.ci["factoid.mrr"])
    assert (row["model"], row["shots"], row["n"], row["questions"]) == ("synthetic-b", 0, 5, 16)
    assert row["usd_per_100q"] == pytest.approx(1.0) and row["git_hash"] == "synthetic"


def _per_question(sweep: Path, name: str) -> list[dict]:
    lines = (sweep / name / "per_question.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_pooling_uses_per_question_scores(report, sweep):
    """Pooled MRR = mean reciprocal rank over all 15 factoid questions, not the mean of the two batch MRRs."""
    rows = _per_question(sweep, "synthetic-a_3_DEMO1_golden") + _per_question(sweep, "synthetic-a_3_DEMO2_golden")
    rr = [r["factoid.rr"] for r in rows if "factoid.rr" in r]
    pooled = report.results.query("config == 'synthetic-a 3-shot' and batch == @POOLED and measure == 'factoid.mrr'")
    assert pooled["n"].iloc[0] == len(rr) == 15
    assert pooled["value"].iloc[0] == pytest.approx(sum(rr) / len(rr))
    low, high = pooled["ci_low"].iloc[0], pooled["ci_high"].iloc[0]
    assert 0 <= low <= pooled["value"].iloc[0] <= high <= 1 and high > low


def test_paired_differences_on_the_same_questions(report):
    pooled = report.pooled().set_index(["config", "measure"])["value"]
    row = report.paired.query("config == 'synthetic-a 3-shot' and measure == 'list.f1'").iloc[0]
    assert row["reference"] == "synthetic-a 0-shot" and row["n"] == 9
    expected = pooled["synthetic-a 3-shot", "list.f1"] - pooled["synthetic-a 0-shot", "list.f1"]
    assert row["delta"] == pytest.approx(expected)
    assert row["ci_low"] <= row["delta"] <= row["ci_high"]
    assert (report.paired["p_holm"] >= report.paired["p_bootstrap"]).all()


def _pooled_rows(sweep: Path, name: str) -> list[dict]:
    """A configuration's per-question rows of both batches, keyed like the report pools them."""
    return [
        {**row, "index": f"{batch}#{row['index']}"}
        for batch in ("DEMO1", "DEMO2")
        for row in _per_question(sweep, f"{name}_{batch}_golden")
    ]


def test_a_configuration_on_fewer_questions_is_paired_on_the_questions_both_scored(sweep, tmp_path):
    """A run cut short (6 questions missing) is compared by the paired bootstrap on the shared questions; a full
    one through the shared resamples: both equal paired_test on the configurations' pooled rows."""
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("report"))
    cut = copy / "synthetic-b_0_DEMO2_golden" / "per_question.jsonl"
    cut.write_text("\n".join(cut.read_text().splitlines()[:-6]) + "\n")
    result = build_report(copy, reference="synthetic-a 0-shot", bootstrap=200, figures=False, baselines=False)
    reference = _pooled_rows(copy, "synthetic-a_0")
    for config, name, questions in (
        ("synthetic-b 0-shot", "synthetic-b_0", 42),
        ("synthetic-a 3-shot", "synthetic-a_3", 48),
    ):
        expected = paired_test(_pooled_rows(copy, name), reference, ["ideal.rouge_su4_f1", "list.f1"], 200, 0)
        for measure, test in expected.items():
            row = result.paired.query("config == @config and measure == @measure").iloc[0]
            got = (row["delta"], (row["ci_low"], row["ci_high"]), row["p_bootstrap"], row["n"])
            assert got == (test.delta, test.ci, test.p_bootstrap, test.n_questions), (config, measure)
        assert expected["ideal.rouge_su4_f1"].n_questions == questions


def test_too_few_resamples_for_holm_is_a_warning(sweep, tmp_path):
    """15 comparisons: with 200 resamples no p is below 1/201, so Holm can reject nothing; 400 resamples can."""
    few = build_report(sweep, out_dir=tmp_path / "a", reference="synthetic-a 0-shot", bootstrap=200, figures=False)
    assert len(few.paired) == 15
    warning = "paired tests: with 200 resamples no p-value falls below 1/201, so Holm over 15 comparisons"
    assert any(w.startswith(warning) for w in few.warnings)
    assert warning in (tmp_path / "a" / "report.md").read_text()
    enough = build_report(sweep, out_dir=tmp_path / "b", reference="synthetic-a 0-shot", bootstrap=400, figures=False)
    assert not any(w.startswith("paired tests") for w in enough.warnings)


@pytest.mark.parametrize(
    ("cost", "score", "front"),
    [
        ([1, 2, 3], [0.1, 0.2, 0.3], [True, True, True]),  # each dearer one is better
        ([1, 2, 3], [0.3, 0.2, 0.1], [True, False, False]),  # the cheapest is also the best
        ([1, 1], [0.5, 0.5], [True, True]),  # ties: neither beats the other
        ([1, 2], [0.5, 0.5], [True, False]),  # same score, dearer
        ([1, 1], [0.5, 0.4], [True, False]),  # same cost, worse
        ([0, 0, 5], [0.2, 0.9, 0.95], [False, True, True]),
        ([3], [0.0], [True]),
    ],
)
def test_pareto_front(cost, score, front):
    assert pareto_front(pd.Series(cost, dtype=float), pd.Series(score)).tolist() == front


def test_pareto_front_matches_the_definition_on_random_points():
    rng = np.random.default_rng(0)
    x, y = pd.Series(rng.integers(0, 6, 60).astype(float)), pd.Series(rng.integers(0, 6, 60) / 5)
    brute = [
        not any((x[j] <= x[i] and y[j] >= y[i]) and (x[j] < x[i] or y[j] > y[i]) for j in range(60)) for i in range(60)
    ]
    assert pareto_front(x, y).tolist() == brute


def test_figures_keep_the_best_series():
    frame = pd.DataFrame(
        {"series": [f"s{i}" for i in range(20) for _ in range(2)], "value": [v for i in range(20) for v in (i, 0)]}
    )
    kept, note = _top_series(frame, "value")
    assert sorted(kept["series"].unique()) == sorted(f"s{i}" for i in range(20 - MAX_SERIES, 20))
    assert note == f"{MAX_SERIES} of 20 series"
    assert _top_series(frame[frame["series"].isin(["s1", "s2"])], "value")[1] == ""


def test_holm():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


@pytest.mark.parametrize(
    ("text", "question", "expected"),
    [
        ("Mutations in BRCA1 and BRCA2 raise risk. BRCA1 is a tumour suppressor.", "", ["BRCA1", "BRCA2"]),
        ("The drug targets IL-6 in Crohn disease. IL-6 levels fell.", "", ["IL-6", "Crohn"]),
        ("Patients with Alzheimer disease were studied.", "Which Alzheimer drug?", []),
        ("These results show that mRNA vaccines work.", "", ["mRNA"]),
        ("", "", []),
    ],
)
def test_snippet_entities(text, question, expected):
    assert snippet_entities([text], question) == expected


def test_majority_yesno(tmp_path):
    assert majority_yesno(None)[0] == "yes"
    pool = tmp_path / "pool"
    pool.mkdir()
    lines = [json.dumps({"messages": [{"role": "assistant", "content": a}]}) for a in ("no", "No.", "yes")]
    (pool / "07_QA_YesNo_x.jsonl").write_text("\n".join(lines) + "\n")
    answer, source = majority_yesno(pool)
    assert answer == "no" and "3 few-shot" in source


def test_baseline_is_scored_like_a_run(report):
    baseline = next(r for r in report.runs if r.model == "baseline" and r.batch == "DEMO1")
    submission = json.loads((baseline.path / "submission.json").read_text())
    golden = json.loads(demo_golden_path().read_text())
    first_snippet = {q["id"]: q["snippets"][0]["text"] for q in golden["questions"]}
    assert all(q["ideal_answer"] == first_snippet[q["id"][: -len("_0")]] for q in submission["questions"])
    assert {q["exact_answer"] for q in submission["questions"] if q["type"] == "yesno"} == {"yes"}
    assert read_metrics(baseline.path).measures["ideal.rouge2_f1"] > 0


def _break(kind: str, run: Path) -> None:
    metrics = run / "metrics.json"
    if kind == "no metrics.json":
        metrics.unlink()
    elif kind == "truncated metrics.json":
        metrics.write_text(metrics.read_text()[:50])
    elif kind == "non-UTF-8 metrics.json":
        metrics.write_bytes(b'{"yesno.acc": "\xff\xfe"}')
    elif kind == "metrics.json without scores":
        metrics.write_text(json.dumps({"accounting.requests": 3, "run.model": "x"}))
    elif kind == "truncated per-question file":
        path = run / "per_question.jsonl"
        path.write_text(path.read_text()[:-20])
    elif kind == "metrics.json is a list":
        metrics.write_text("[1, 2]")


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("no metrics.json", "no metrics.json"),
        ("truncated metrics.json", "metrics.json is not valid JSON (truncated?)"),
        ("non-UTF-8 metrics.json", "metrics.json is not UTF-8"),
        ("metrics.json without scores", "metrics.json has no scores"),
        ("truncated per-question file", "per_question.jsonl has a line that is not JSON"),
        ("metrics.json is a list", "metrics.json is not a JSON object"),
    ],
)
def test_bad_run_is_skipped_with_a_warning(sweep, tmp_path, kind, reason):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("report"))
    broken = copy / "synthetic-b_0_DEMO1_golden"
    _break(kind, broken)
    result = build_report(copy, bootstrap=20, figures=False, baselines=False)
    warning = f"skipped {broken}: {reason}"
    assert any(w.startswith(warning) for w in result.warnings)
    assert warning in (copy / "report" / "report.md").read_text()
    assert str(broken) not in set(result.results["run_dir"])
    assert len(result.results.query("batch == 'DEMO2'")) > 0


def test_duplicate_run_keeps_one_with_a_warning(sweep, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("report"))
    shutil.copytree(copy / "synthetic-a_0_DEMO1_golden", copy / "rerun" / "synthetic-a_0_DEMO1_golden")
    result = build_report(copy, bootstrap=20, figures=False, baselines=False)
    assert any(w.startswith("duplicate run of synthetic-a 0-shot on DEMO1") for w in result.warnings)
    assert len(result.results.query("config == 'synthetic-a 0-shot' and batch == 'DEMO1'")["run_dir"].unique()) == 1


def _interrupted_run(run: Path) -> None:
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("model: {name: m}\n")


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda p: p / "missing", ConfigError, "no such directory"),
        (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", ConfigError, "is a file"),
        (lambda p: p, BioQAError, "no run directories"),
        (lambda p: _interrupted_run(p / "r") or p, BioQAError, "none of the 1 run directories .*no metrics.json"),
        (
            lambda p: build_report(make_sweep(p), bootstrap=0, figures=False).out_dir,
            ConfigError,
            "is a report's output",
        ),
    ],
    ids=["missing", "file", "empty", "no usable run", "a report's output"],
)
def test_unusable_source_is_one_clear_error(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        build_report(make(tmp_path), bootstrap=10)


def test_an_earlier_report_is_not_read_as_runs(sweep, tmp_path):
    """Its baseline runs belong to that report: a new report over the sweep (listed twice) reads the sweep's runs."""
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("report"))
    first = build_report(copy, bootstrap=0, figures=False)
    again = build_report([copy, copy], out_dir=tmp_path / "again", bootstrap=0, figures=False)
    assert {str(r.path) for r in again.runs if r.model != "baseline"} == {
        str(r.path) for r in first.runs if r.model != "baseline"
    }
    assert again.warnings == first.warnings == []
    assert not any(str(first.out_dir) in str(r.path) for r in again.runs)


def test_unknown_reference_lists_the_choices(sweep, tmp_path):
    with pytest.raises(ConfigError, match="synthetic-a 3-shot"):
        build_report(sweep, out_dir=tmp_path, reference="nonexistent", bootstrap=10, figures=False)


@pytest.mark.slow
def test_evaluate_py_report(sweep, tmp_path):
    """The entry point: ``evaluate.py report=DIR`` writes DIR/report; a bad dir exits 2 with one line."""
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("report"))
    command = [sys.executable, "evaluate.py", f"hydra.run.dir={tmp_path / 'run'}", "bootstrap=20"]
    ok = subprocess.run([*command, f"report={copy}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "## Pooled over batches" in ok.stdout and (copy / "report" / "results.parquet").is_file()
    bad = subprocess.run([*command, f"report={tmp_path / 'nope'}"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"evaluate.py: error: report={tmp_path / 'nope'}: no such directory"]


def test_prompt_found_in_a_real_completion_cache(tmp_path):
    """Error analysis finds a prediction's prompt in the SQLite completion cache by the pipeline's prompt hash."""
    from bioqa.analysis.questions import prompt_of
    from bioqa.models.base import ChatRequest, Completion, GenerationParams
    from bioqa.models.cache import CompletionCache, cache_key
    from bioqa.pipeline.answering import prompt_hash

    messages = ({"role": "system", "content": "be brief"}, {"role": "user", "content": "Is water wet?"})
    requests = [
        ChatRequest(messages, GenerationParams(max_new_tokens=8, stop=("\n",)), {"type": "object"}),
        ChatRequest(messages, GenerationParams(max_new_tokens=9)),  # same text, other decoding: another hash
    ]
    cache = CompletionCache(tmp_path / "completions.sqlite")
    for request in requests:
        cache.put(cache_key("hf", "m", request), "hf", "m", request, Completion(text='{"answer": "yes"}'))
    cache.close()
    record = {"completion": '{"answer": "yes"}', "prompt_hash": prompt_hash(requests[0])}
    assert prompt_of(record, tmp_path / "completions.sqlite") == list(messages)
    assert prompt_of({**record, "prompt_hash": "0" * 16}, tmp_path / "completions.sqlite") is None
    assert prompt_of(record, tmp_path / "absent.sqlite") is None


def test_a_run_started_on_the_default_questions_finds_its_golden_file_in_its_provenance(tmp_path):
    from bioqa.analysis.runs import load_run, resolve_golden

    run = tmp_path / "run"
    synthetic_run(run, demo_golden_path(), "synthetic-a", 1, 0.5, bootstrap=0)
    config = run / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace(str(demo_golden_path()), "${demo_golden:}"))  # as Hydra saves it
    assert "${demo_golden:}" in config.read_text()
    provenance = json.loads((run / "provenance.json").read_text())
    provenance["data"] = {str(demo_golden_path()): "sha"}  # what infer.py records: the path it read
    (run / "provenance.json").write_text(json.dumps(provenance))
    assert resolve_golden(load_run(run)) == demo_golden_path().resolve()
