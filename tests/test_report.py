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
import yaml

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


def test_configurations_on_different_questions_are_compared_on_the_questions_all_answered(sweep, tmp_path):
    """A configuration run on 26 of DEMO2's 32 questions (data.limit): every configuration is pooled, ranked and
    paired on the 42 questions all of them answered (n says so), each paired row equal to paired_test on them."""
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("report"))
    short = copy / "synthetic-b_0_DEMO2_golden"
    golden = yaml.safe_load((short / ".hydra" / "config.yaml").read_text())["data"]["golden"]
    shutil.rmtree(short)
    synthetic_run(short, golden, "synthetic-b", 0, 0.5, 0.1, usd_per_question=0.01, limit=26, bootstrap=50)
    result = build_report(copy, reference="synthetic-a 0-shot", bootstrap=200, figures=False, baselines=False)
    (comparison,) = result.comparisons
    assert comparison.restricted and len(comparison.questions) == 42
    common = comparison.questions
    reference = [r for r in _pooled_rows(copy, "synthetic-a_0") if r["index"] in common]
    for config, name in (("synthetic-b 0-shot", "synthetic-b_0"), ("synthetic-a 3-shot", "synthetic-a_3")):
        rows = [r for r in _pooled_rows(copy, name) if r["index"] in common]
        expected = paired_test(rows, reference, ["ideal.rouge_su4_f1", "list.f1"], 200, 0)
        for measure, test in expected.items():
            row = result.paired.query("config == @config and measure == @measure").iloc[0]
            got = (row["delta"], (row["ci_low"], row["ci_high"]), row["p_bootstrap"], row["n"])
            assert got == (test.delta, test.ci, test.p_bootstrap, test.n_questions), (config, measure)
        assert expected["ideal.rouge_su4_f1"].n_questions == 42
    pooled = result.pooled().query("measure == 'ideal.rouge_su4_f1'")
    assert set(pooled["n"]) == {42}
    markdown = (copy / "report" / "report.md").read_text()
    assert "use only the 42 questions every one of them answered" in markdown
    unranked = "Each run on its own questions (they differ between runs): not ranked, no bold."
    assert f"## Batch DEMO2\n\n{unranked}" in markdown and f"## Batch DEMO1\n\n{unranked}" not in markdown


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
    elif kind == "per-question file cut at a line boundary":
        path = run / "per_question.jsonl"
        path.write_text("\n".join(path.read_text().splitlines()[:-6]) + "\n")
    elif kind == "unreadable run identity":
        (run / "run_identity.json").write_text('{"identity": [1]}')
    elif kind.startswith("per-question"):  # the first record (demo_yesno_01_0) changed, or repeated at the end
        path = run / "per_question.jsonl"
        lines = path.read_text().splitlines()
        first = json.loads(lines[0])
        scores = {"range": 7.5, "NaN": float("nan"), "string": "1"}
        first["yesno.correct"] = next((v for k, v in scores.items() if k in kind), first["yesno.correct"])
        changed = {"twice": [*lines, lines[0]], "list": ["[1]", *lines[1:]]}
        lines = next((v for k, v in changed.items() if k in kind), [json.dumps(first), *lines[1:]])
        path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("no metrics.json", "no metrics.json"),
        ("truncated metrics.json", "metrics.json is not valid JSON (truncated?)"),
        ("non-UTF-8 metrics.json", "metrics.json is not UTF-8"),
        ("metrics.json without scores", "metrics.json has no scores"),
        ("truncated per-question file", "per_question.jsonl has a line that is not JSON"),
        ("metrics.json is a list", "metrics.json is not a JSON object"),
        (
            "per-question file cut at a line boundary",
            "incomplete: per_question.jsonl holds 1 of the 3 list questions the run scored (cut short?): not pooled",
        ),
        ("unreadable run identity", "run_identity.json holds no 'identity' object"),
        ("per-question file with a question twice", "per_question.jsonl:17: question demo_yesno_01_0 a second time"),
        ("per-question score out of range", "per_question.jsonl:1: yesno.correct=7.5 is outside [0, 1] (question"),
        ("per-question score NaN", "per_question.jsonl:1: yesno.correct=nan is outside [0, 1] (question"),
        ("per-question score a string", "per_question.jsonl:1: yesno.correct is not a number ('1')"),
        ("per-question record a list", "per_question.jsonl:1: not a question's record (a JSON object): not pooled"),
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


def _identity(run: Path, temperature: float) -> None:
    """What infer.py records in run_identity.json (the answering settings among the rest)."""
    identity = {
        "backend": {"kind": "hf", "model_id": "synthetic-a"},
        "prompt": {"n_shots": 0, "structured": True},
        "data": {"sha256": run.name, "limit": None, "types": None},
        "answering": {"kinds": ["exact", "ideal"], "temperature": temperature, "seed": 0 if temperature else None},
        "task": {"name": "phase_b"},
    }
    (run / "run_identity.json").write_text(json.dumps({"identity": identity, "fingerprint": "x"}))


def _axis_sweep(root: Path, axis: str, values: list) -> Path:
    """A sweep over one setting the base label does not show, 2 batches each: through the config
    (``prompt.structured``) or only through the run identity (``answering.temperature``)."""
    goldens = [replicate_golden(demo_golden_path(), root / "golden" / f"DEMO{i}_golden.json", i) for i in (1, 2)]
    for i, value in enumerate(values):
        for golden in goldens:
            run = root / "sweep" / f"{i}_{golden.stem}"
            settings = {axis: value} if axis == "prompt.structured" else {}
            synthetic_run(run, golden, "synthetic-a", 0, 0.3 + 0.4 * i, usd_per_question=0.01 * (i + 1),
                          bootstrap=20, settings=settings)  # fmt: skip
            if axis == "answering.temperature":
                _identity(run, value)
    return root / "sweep"


def _figure_texts(monkeypatch) -> dict[str, list[str]]:
    """Every text drawn in each figure (legends, tick labels, titles, annotations), captured as it is saved."""
    from bioqa.analysis import plots

    texts: dict[str, list[str]] = {}
    save = plots._save

    def capture(fig, path):
        texts[Path(path).stem] = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", capture)
    return texts


@pytest.mark.parametrize(
    ("axis", "values", "labels"),
    [
        ("prompt.structured", [True, False], ["synthetic-a 0-shot prompt.structured=True",
                                              "synthetic-a 0-shot prompt.structured=False"]),
        ("answering.temperature", [0.0, 0.7], ["synthetic-a 0-shot answering.temperature=0.0 answering.seed=None",
                                               "synthetic-a 0-shot answering.temperature=0.7 answering.seed=0"]),
    ],
)  # fmt: skip
def test_a_sweep_axis_the_report_does_not_know_gives_one_configuration_per_value(
    tmp_path, monkeypatch, axis, values, labels
):
    """Issue 16's done-when: two configurations in report.md, results.csv, the paired table and every figure."""
    texts = _figure_texts(monkeypatch)
    sweep = _axis_sweep(tmp_path, axis, values)
    report = build_report(sweep, bootstrap=50)
    assert not [w for w in report.warnings if "duplicate" in w]
    results = pd.read_csv(report.out_dir / "results.csv")
    assert set(results["config"]) == {*labels, "baseline"}
    assert results.query("batch == 'pooled'").groupby("config")["fingerprint"].nunique().eq(1).all()
    assert results.query("config in @labels")["fingerprint"].nunique() == 2
    paired = pd.read_csv(report.out_dir / "paired.csv")
    assert set(paired["config"]) == set(labels) and set(paired["reference"]) == {"baseline"}
    markdown = (report.out_dir / "report.md").read_text()
    pooled_table = markdown.split("## Pooled over batches")[1].split("## Batch")[0]
    assert all(f"| {label} |" in pooled_table for label in labels)
    series = [label.replace(" 0-shot", "") for label in labels]
    assert all(s in texts["shot_curves"] and s in texts["parse_failures"] for s in series)
    assert all(label in texts["forest"] for label in labels)
    assert all(any(t.startswith("p=") and t.endswith(f" n={n}") for t in texts["forest"]) for n in (12, 15, 48))
    assert sum(label in t for t in texts["cost_latency"] for label in labels) >= 1  # the front's points, labelled


def test_runs_with_one_fingerprint_on_the_same_questions_are_duplicates(sweep, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("report"))
    shutil.copytree(copy / "synthetic-a_0_DEMO1_golden", copy / "rerun" / "synthetic-a_0_DEMO1_golden")
    result = build_report(copy, bootstrap=20, figures=False, baselines=False)
    (warning,) = [w for w in result.warnings if w.startswith("duplicate")]
    assert "duplicate run of synthetic-a 0-shot on DEMO1 (same fingerprint" in warning
    assert "same 16 questions" in warning
    assert set(result.results["config"]) == {"synthetic-a 0-shot", "synthetic-a 3-shot", "synthetic-b 0-shot"}


def _rows(values: list[float]) -> list[dict]:
    return [{"index": i, "factoid.rr": v} for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("a", "b", "p"),
    [
        ([1, 1, 1], [0, 0, 0], 2 / 8),  # 3 pairs, all one way: what a sign test on 3 pairs gives, never below 0.25
        ([1, 1, 1, 1], [0, 0, 0, 0], 2 / 16),
        ([1, 0.5, 0, 0], [0, 0.5, 0, 0], 1.0),  # one informative pair: every swap is as far from 0
        ([0.5, 0.2], [0.5, 0.2], 1.0),  # no difference
        ([1] * 12, [0] * 12, 2 / 2**12),  # the largest exact test
    ],
)
def test_exact_permutation_p(a, b, p):
    from bioqa.analysis.measures import exact_permutation_p

    assert exact_permutation_p(_rows(a), _rows(b), "factoid.mrr") == pytest.approx(p)


def test_exact_permutation_p_refuses_more_questions_than_it_can_enumerate():
    from bioqa.analysis.measures import exact_permutation_p

    with pytest.raises(ValueError, match="0 < n <= 12, got 13"):
        exact_permutation_p(_rows([1] * 13), _rows([0] * 13), "factoid.mrr")


def _limited_sweep(root: Path, golden: Path, limit: int) -> Path:
    for shots, skill in ((0, 0.1), (3, 0.9)):
        synthetic_run(root / f"a_{shots}", golden, "synthetic-a", shots, skill, limit=limit, bootstrap=20)
    return root


def test_sweeps_on_3_and_5_questions_are_compared_on_the_3_with_exact_tests(tmp_path, caplog):
    """``report=[SWEEP_3Q,SWEEP_5Q]``: every table, ranking and paired test on the 3 questions all configurations
    answered (n = 3), the baseline too; exact tests on 3 pairs cannot go below p = 0.25, so nothing is significant."""
    golden = replicate_golden(demo_golden_path(), tmp_path / "golden" / "DEMO1_golden.json", 1)
    sources = [_limited_sweep(tmp_path / "s3", golden, 3), _limited_sweep(tmp_path / "s5", golden, 5)]
    caplog.clear()
    report = build_report(sources, out_dir=tmp_path / "out", bootstrap=1000, figures=False)
    (comparison,) = report.comparisons
    assert comparison.restricted and len(comparison.questions) == 3
    pooled = report.pooled()
    assert set(pooled["config"]) == {
        "synthetic-a 0-shot questions=3", "synthetic-a 0-shot questions=5",
        "synthetic-a 3-shot questions=3", "synthetic-a 3-shot questions=5", "baseline",
    }  # fmt: skip
    assert pooled["n"].max() == 3 and pooled.query("measure == 'ideal.rouge_su4_f1'")["n"].eq(3).all()
    assert (report.paired["n"] <= 3).all() and set(report.paired["test"]) == {"exact permutation"}
    assert (report.paired["p"] >= 0.25).all() and not (report.paired["p_holm"] < 0.05).any()
    assert (report.paired["p_holm"] >= report.paired["p"]).all()
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "use only the 3 questions every one of them answered" in markdown
    assert "Resolution: 1000 resamples" in markdown
    assert not [r for r in caplog.records if "answers only" in r.getMessage()]  # the baseline answers what it was asked
    assert f"so at most 0 of the {len(report.paired)} comparisons can be called significant" in markdown
    paired_table = markdown.split("## Paired differences")[1].split("##")[0]
    assert "**" not in paired_table.split("after Holm.")[1]


def test_configurations_without_a_common_question_are_separate_groups(tmp_path):
    goldens = [replicate_golden(demo_golden_path(), tmp_path / "golden" / f"DEMO{i}_golden.json", i) for i in (1, 2)]
    synthetic_run(tmp_path / "runs" / "x", goldens[0], "synthetic-x", 0, 0.3, bootstrap=20)
    synthetic_run(tmp_path / "runs" / "y", goldens[1], "synthetic-y", 0, 0.6, bootstrap=20)
    report = build_report(tmp_path / "runs", bootstrap=50)
    assert sorted(report.figures) == sorted(f"{f}_{g}" for f in ("shot_curves", "cost_latency", "forest",
                                                                 "parse_failures") for g in ("Q1", "Q2"))  # fmt: skip
    assert [(c.name, len(c.questions), c.reference) for c in report.comparisons] == [
        ("Q1", 16, "baseline comparison=Q1"),
        ("Q2", 32, "baseline comparison=Q2"),
    ]
    assert set(zip(report.paired["config"], report.paired["reference"], strict=True)) == {
        ("synthetic-x 0-shot", "baseline comparison=Q1"),
        ("synthetic-y 0-shot", "baseline comparison=Q2"),
    }
    baseline = report.pooled().query("config == 'baseline comparison=Q2' and measure == 'ideal.rouge_su4_f1'")
    assert baseline["n"].tolist() == [32]
    markdown = (report.out_dir / "report.md").read_text()
    assert "Group Q1: Configurations compared on 16 questions (DEMO1)" in markdown
    assert "no configuration is ranked against another group's" in markdown
    assert "## Pooled over batches — group Q2" in markdown


def test_a_question_type_a_batch_lacks_is_a_dash_never_a_bold_zero(tmp_path):
    """metrics.json says factoid.mrr = 0.0 for a batch without factoid questions: no value, n = 0, never bold."""
    data = json.loads(demo_golden_path().read_text())
    data["questions"] = [q for q in data["questions"] if q["type"] in ("yesno", "summary")]
    golden = tmp_path / "YN_golden.json"
    golden.write_text(json.dumps(data))
    for model, skill in (("synthetic-a", 0.2), ("synthetic-b", 0.8)):
        synthetic_run(tmp_path / "runs" / model, golden, model, 0, skill, bootstrap=20)
    report = build_report(tmp_path / "runs", bootstrap=20, figures=False, baselines=False)
    factoid = report.results.query("measure in ['factoid.mrr', 'list.f1']")
    assert factoid["value"].isna().all() and set(factoid["n"]) == {0}
    table = (report.out_dir / "report.md").read_text().split("## Batch YN")[1].strip().split("\n\n")[0]
    header, _, *rows = table.splitlines()
    assert len(rows) == 2
    columns = [c.strip() for c in header.strip("|").split("|")]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[columns.index("factoid.mrr")] == "–" and cells[columns.index("list.f1")] == "–"
    assert "**0.000**" not in table


def test_the_report_directory_is_rebuilt_whole(sweep, tmp_path):
    """bootstrap=0 after a report with figures: no paired test, so no forest.png left beside report.md."""
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("report"))
    first = build_report(copy, bootstrap=50)
    assert (first.out_dir / "forest.png").is_file()
    (first.out_dir / "stale.txt").write_text("from an earlier report")
    again = build_report(copy, bootstrap=0)
    assert again.out_dir == first.out_dir and not (again.out_dir / "forest.png").exists()
    assert not (again.out_dir / "stale.txt").exists()
    assert "(no comparable configuration)" in (again.out_dir / "report.md").read_text()
    assert "forest" not in again.figures
    assert sorted(p.name for p in copy.iterdir() if p.name.startswith(".")) == []  # no temporary directory left
    assert all(Path(r.path).is_dir() for r in again.runs)  # the baselines' run directories, where they now are


def test_a_report_directory_that_holds_other_files_is_refused(sweep, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"report_dir=.*mine: exists and is not a report's output"):
        build_report(sweep, out_dir=tmp_path / "mine", bootstrap=0, figures=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def _as(run: Path, task: str, **extra) -> Path:
    """Rewrite a fixture run's recorded config as another task's (what infer.py task=... records)."""
    config_path = run / ".hydra" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["model"]["name"] = "smollm2-135m-instruct"  # the default, never used by these tasks
    config["prompt"]["n_shots"] = 3
    config["task"]["name"] = task
    metrics = json.loads((run / "metrics.json").read_text())
    if task == "ensemble":
        config["ensemble"] = {"runs": extra["members"], "rrf_k": 60, "ideal": "member"}
        metrics["run"]["model"] = "ensemble(" + " + ".join("synthetic-a" for _ in extra["members"]) + ")"
        metrics["ensemble"] = {"members": extra["members"]}
    else:
        config["retrieval"] = {"phase_a": {"strategy": "bm25"}, "wikipedia": None}
    config_path.write_text(yaml.safe_dump(config))
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.mark.parametrize(
    ("runs", "labels"),
    [
        ([("ensemble", ["/m/a_run", "/m/b_run"])], ["ensemble(a_run + b_run)"]),
        (
            [("ensemble", ["/m/a_run", "/m/b_run"]), ("ensemble", ["/m/a_run", "/m/c_run"])],
            ["ensemble(a_run + b_run)", "ensemble(a_run + c_run)"],
        ),
        ([("phase_a", None)], ["bm25 phase_a"]),
    ],
    ids=["an ensemble", "two ensembles", "BM25 phase A"],
)
def test_labels_say_what_ran(tmp_path, runs, labels):
    golden = replicate_golden(demo_golden_path(), tmp_path / "golden" / "DEMO1_golden.json", 1)
    for i, (task, members) in enumerate(runs):
        run = synthetic_run(tmp_path / "runs" / f"r{i}", golden, "synthetic-a", 0, 0.5, bootstrap=0)
        _as(run, task, members=members)
    report = build_report(tmp_path / "runs", bootstrap=0, figures=False, baselines=False)
    assert sorted(set(report.results["config"])) == labels
    assert not any("smollm2" in label or "3-shot" in label for label in report.results["config"])
    assert set(report.results["model"]) <= {"bm25", "ensemble(synthetic-a + synthetic-a)"}
    assert report.results["shots"].isna().all()


def test_two_ensembles_of_members_with_the_same_names_stay_apart(tmp_path):
    golden = replicate_golden(demo_golden_path(), tmp_path / "golden" / "DEMO1_golden.json", 1)
    for i, members in enumerate((["/x/a", "/x/b"], ["/y/a", "/y/b"])):
        _as(synthetic_run(tmp_path / "runs" / f"e{i}", golden, "synthetic-a", 0, 0.5, bootstrap=0), "ensemble",
            members=members)  # fmt: skip
    report = build_report(tmp_path / "runs", bootstrap=0, figures=False, baselines=False)
    labels = sorted(set(report.results["config"]))
    assert len(labels) == 2 and all(label.startswith("ensemble(a + b) ensemble.runs=") for label in labels)
    assert not any("duplicate" in w for w in report.warnings)


def _pooled_frame(rows: list[tuple]) -> pd.DataFrame:
    """Pooled rows as the report writes them: (config, measure, value, n, usd_per_100q, s_per_question, shots)."""
    frame = pd.DataFrame(rows, columns=["config", "measure", "value", "n", "usd_per_100q", "s_per_question", "shots"])
    return frame.assign(
        model=frame["config"], series=frame["config"], ci_low=None, ci_high=None, parse_failure_rate=0.0, questions=3
    )


@pytest.mark.parametrize(
    ("rows", "x_key", "unit", "expected"),
    [
        ([("a", "yesno.macro_f1", 0.5, 3, 0.0, 1.0, 0), ("b", "yesno.macro_f1", 0.7, 3, 0.0, 2.0, 0)],
         "usd_per_100q", "USD", "every configuration's USD is 0 (local models): nothing to trade off"),
        ([("a", "yesno.macro_f1", 0.5, 3, None, 1.0, 0)], "usd_per_100q", "USD", "no USD recorded by these runs"),
        ([("a", "factoid.mrr", None, 0, 1.0, 1.0, 0)], "usd_per_100q", "USD",
         "no questions of the type factoid.mrr counts"),
        ([("a", "yesno.macro_f1", 0.5, 3, 1.0, 1.0, 0), ("b", "yesno.macro_f1", 0.7, 3, 2.0, 1.0, 0)],
         "usd_per_100q", "USD", None),
    ],
    ids=["all zero", "no cost recorded", "no questions of that type", "drawn"],
)  # fmt: skip
def test_cost_panels_say_why_they_are_empty(rows, x_key, unit, expected):
    from bioqa.analysis.plots import cost_note

    frame = _pooled_frame(rows)
    assert cost_note(frame, frame["measure"].iloc[0], x_key, unit) == expected


def test_pareto_labels_stay_inside_the_figure(tmp_path, monkeypatch):
    from bioqa.analysis import plots

    long = "a-configuration-with-a-rather-long-label prompt.structured=False answering.temperature=0.7"
    rows = [(f"{long} {i}", "yesno.macro_f1", v, 3, c, c, 0) for i, (v, c) in enumerate([(0.1, 0.0), (0.9, 9.0)])]
    figures = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.setdefault("fig", fig) and path)
    plots.cost_latency(_pooled_frame(rows), ["yesno.macro_f1"], tmp_path / "c.png")
    fig = figures["fig"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for ax in fig.axes for t in ax.texts if long in t.get_text()]
    assert len(labels) == 4  # both points are on the front, on both panels
    for text in labels:
        box = text.get_window_extent(renderer)
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1, text.get_text()


def test_a_phase_a_panel_shows_the_model_free_run(tmp_path, monkeypatch):
    texts = _figure_texts(monkeypatch)
    from bioqa.analysis.plots import shot_curves

    rows = [("m 0-shot", "yesno.macro_f1", 0.4, 3, 0.0, 1.0, 0), ("m 3-shot", "yesno.macro_f1", 0.6, 3, 0.0, 1.0, 3),
            ("bm25 phase_a", "documents.MAP", 0.3, 3, 0.0, 1.0, None)]  # fmt: skip
    frame = _pooled_frame(rows).assign(series=["m", "m", "bm25 phase_a"])
    shot_curves(frame, ["yesno.macro_f1", "documents.MAP"], tmp_path / "s.png")
    assert "documents.MAP (n=3)" in texts["s"] and "bm25 phase_a (no shots)" in texts["s"]


@pytest.mark.parametrize(
    ("tests", "bootstrap", "expected"),
    [
        ([(3, "exact permutation")] * 4, 1000, "so at most 0 of the 4 comparisons"),  # 0.25 each
        ([(12, "exact permutation"), (3, "exact permutation")], 1000, "so at most 1 of the 2 comparisons"),
        ([(48, "paired bootstrap")] * 15, 200, "so at most 0 of the 15 comparisons"),  # 1/201 > 0.05/15
        ([(48, "paired bootstrap")] * 15, 400, "so at most 15 of the 15 comparisons"),
        ([(5, "exact permutation"), (48, "paired bootstrap")], 1000, "so at most 1 of the 2 comparisons"),  # 2/32
    ],
)
def test_the_resolution_line_says_what_holm_can_reach(tests, bootstrap, expected):
    """Holm's best case: each test at the smallest p its n (exact: 2/2^n) or resamples (1/(B+1)) allow."""
    from bioqa.analysis.report import resolution_note

    frame = pd.DataFrame(tests, columns=["n", "test"])
    assert expected in resolution_note(frame, bootstrap)


def test_a_question_without_golden_answers_is_no_missing_record(tmp_path):
    """The evaluator scores 15 of 16 questions (one has no golden answer): 15 per-question records are complete."""
    data = json.loads(demo_golden_path().read_text())
    for key in ("exact_answer", "ideal_answer", "documents", "snippets"):
        data["questions"][0].pop(key, None)
    golden = tmp_path / "G_golden.json"
    golden.write_text(json.dumps(data))
    synthetic_run(tmp_path / "runs" / "a", golden, "synthetic-a", 0, 0.5, bootstrap=0)
    report = build_report(tmp_path / "runs", bootstrap=0, figures=False, baselines=False)
    assert report.warnings == [] and set(report.results["config"]) == {"synthetic-a 0-shot"}
