"""Experiment configs expand and validate without any API call; sweeps run in parallel (joblib) and through submitit
with the shared completion cache and every run journal intact."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from helpers import compose_config, run_script

from bioqa.errors import ConfigError
from bioqa.experiments import describe_job, experiment_names, job_overrides, main, plan_jobs
from bioqa.resources import demo_golden_path
from bioqa.retrieval.wikipedia_cache import WikipediaCache
from bioqa.rundir import read_metrics

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("smollm2_parsed_once")  # planning builds SmolLM2 backends: one GGUF parse

#: experiment → (jobs, models in the grid)
EXPERIMENTS = {
    "paper_phase_b": (
        48,
        {"claude-3-opus", "gpt-3.5-turbo-0125", "mixtral-8x7b-instruct", "mixtral-8x7b-instruct-qlora"},
    ),
    "paper_phase_a": (
        24,
        {"claude-3-opus", "gpt-3.5-turbo-0125", "mixtral-8x7b-instruct", "mixtral-8x7b-instruct-qlora"},
    ),
    "shot_sweep": (5, {"smollm2-135m-instruct"}),
    "open_vs_commercial": (12, {"smollm2-135m-instruct", "gpt-3.5-turbo-0125", "claude-3-opus"}),
}


def test_every_experiment_config_is_covered():
    assert set(experiment_names()) == set(EXPERIMENTS)


@pytest.mark.parametrize(
    "experiment",
    [pytest.param(name, marks=pytest.mark.slow) if EXPERIMENTS[name][0] > 20 else name for name in sorted(EXPERIMENTS)],
)
def test_experiment_composes_and_builds_every_backend_without_calling_it(experiment, monkeypatch, shared_dir):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-key")
    monkeypatch.delenv("BIOQA_MIXTRAL_DIR", raising=False)
    monkeypatch.delenv("BIOQA_MIXTRAL_ADAPTER", raising=False)
    expected_jobs, models = EXPERIMENTS[experiment]
    jobs = plan_jobs(experiment)
    assert len(jobs) == expected_jobs
    assert {job.config.model.name for job in jobs if job.config is not None} | {
        o.split("=")[1] for job in jobs if job.config is None for o in job.overrides if o.startswith("model=")
    } >= models - {"mixtral-8x7b-instruct-qlora"}
    for job in jobs:
        local_mixtral = any(o.startswith("model=mixtral") for o in job.overrides)
        # API models are ready with a key in the environment; Mixtral needs local weights (never downloaded)
        assert job.ready != local_mixtral, (job.overrides, job.problem)
        if local_mixtral:
            hints = ("local weights", "model.backend.adapter", "model.adapter is missing", "weights are not in")
            assert any(hint in job.problem for hint in hints), job.problem


@pytest.mark.parametrize("prompt", ["0shot", "1shot", "10shot"])
def test_paper_phase_a_grid_runs_the_papers_phase_a_prompts_with_the_answers_shot_count(prompt):
    cfg = compose_config("infer", ["experiment=paper_phase_a", f"prompt={prompt}", "model=gpt-3.5-turbo"])
    phase_a = cfg.retrieval.phase_a
    assert (phase_a.style, phase_a.query_max_tokens) == ("paper", 4096)
    n = int(prompt.removesuffix("shot"))
    assert (phase_a.shots.query, phase_a.shots.extract, phase_a.shots.rerank) == (0, n, n)


def test_missing_api_key_is_named_in_the_plan(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    jobs = plan_jobs("shot_sweep", ["model=gpt-3.5-turbo", "prompt=0shot,1shot"])
    assert len(jobs) == 2 and all("OPENAI_API_KEY" in job.problem for job in jobs)


def no_snippets(tmp_path: Path) -> Path:
    """The demo batch as a Phase A test set: no snippets."""
    questions = json.loads(demo_golden_path().read_text())["questions"]
    path = tmp_path / "test_set.json"
    path.write_text(json.dumps({"questions": [{**q, "snippets": []} for q in questions]}))
    return path


def wikipedia_cache(tmp_path: Path) -> Path:
    WikipediaCache(tmp_path / "wikipedia.sqlite").close()
    return tmp_path


#: overrides of ``shot_sweep`` (``{tmp}``: the test's directory, ``{test_set}``: questions without snippets,
#: ``{wiki}``: a directory holding a Wikipedia cache) → the ready column of its jobs, as infer.py would find them
PLANS = [
    (["data.limit=abc"], ["no: data.limit=abc: Input should be a valid integer"]),
    (["data.limit=0"], ["no: data.limit=0: Input should be greater than or equal to 1"]),
    (
        ["data.golden={test_set}", "data.limit=5"],
        ["no: task=phase_b answers from the questions' snippets, but 5 of 5 selected"],
    ),
    (["data.golden={test_set}", "data.closed_book=true"], ["yes"]),
    (
        ["prompt.n_shots=1", "prompt.pool=fewshot", "prompt.pool_path={tmp}/none.json", "data.shot_pool=null"],
        ["no: few-shot pool"],
    ),
    (["model=gpt-3.5-turbo"], ["yes (key present, not verified)"]),
    (["model=gpt-4o"], ["no: environment variable OPENAI_API_KEY (the API key for gpt-4o-2024-08-06) is not set"]),
    (["retrieval=wikipedia"], ["yes (needs network (Wikipedia))"]),
    # the Wikipedia switch in the ordinary override form, across a grid with and without Wikipedia
    (
        ["retrieval=none,wikipedia", "retrieval.wikipedia.offline=true", "paths.cache_dir={wiki}"],
        ["yes", "yes (Wikipedia offline: cache only)"],
    ),
    (
        ["retrieval=none,wikipedia", "retrieval.wikipedia.offline=true", "paths.cache_dir={tmp}/empty"],
        ["yes", "no: {tmp}/empty/wikipedia.sqlite: no Wikipedia cache here"],
    ),
]


@pytest.mark.parametrize(("overrides", "ready"), PLANS, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_the_plan_checks_each_job_as_infer_will(overrides, ready, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    files = {"tmp": str(tmp_path), "test_set": str(no_snippets(tmp_path)), "wiki": str(wikipedia_cache(tmp_path))}
    if "model=gpt-4o" in overrides:
        monkeypatch.delenv("OPENAI_API_KEY")
    jobs = plan_jobs("shot_sweep", ["prompt=0shot", *(o.format(**files) for o in overrides)])
    rows = [describe_job(job)["ready"] for job in jobs]
    assert len(rows) == len(ready)
    for row, expected in zip(rows, ready, strict=True):
        assert row.startswith(expected.format(**files)), row
    assert main(["shot_sweep", "prompt=0shot", *(o.format(**files) for o in overrides)]) == (
        0 if all(r.startswith("yes") for r in rows) else 2
    )


def test_command_line_overrides_replace_the_experiment_grid():
    jobs = job_overrides("shot_sweep", ["prompt=0shot,10shot", "data.limit=3"])
    assert [[o for o in job if o.startswith("prompt=")] for job in jobs] == [["prompt=0shot"], ["prompt=10shot"]]
    assert all("data.limit=3" in job for job in jobs)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["no_such_experiment"], 2, "no such experiment"),
        ([], 2, "error: no experiment given (usage: python -m bioqa.experiments EXPERIMENT [override ...]; experim"),
        (["-m", "shot_sweep"], 2, "error: -m: not an experiment (usage: python -m bioqa.experiments EXPERIMENT"),
        (["--help"], 0, "experiments: open_vs_commercial, paper_phase_a, paper_phase_b, shot_sweep"),
        (["shot_sweep", "data.limit=abc"], 2, "0 of 5 jobs can run"),
        (["shot_sweep", "prompt=0shot,3shoot"], 2, "no: prompt=3shoot: no option '3shoot' in group 'prompt'"),
        (["shot_sweep", "prompt=0shot"], 0, "1 of 1 jobs can run"),
        (["shot_sweep", "bogus=1"], 2, "error: bogus=1: no config key 'bogus' (use +bogus=1 to add a new key)"),
        (["shot_sweep", "model=mixtrall"], 2, "error: model=mixtrall: no option 'mixtrall' in group 'model'"),
        (["shot_sweep", "prompt=[1"], 2, "error: prompt=[1: not a valid override"),
    ],
)
def test_plan_command_exit_codes(argv, code, message, capsys):
    assert main(argv) == code
    captured = capsys.readouterr()
    assert message in captured.out + captured.err
    assert "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) <= 1  # an error's line, or the plan's count


def test_unknown_experiment_is_a_config_error():
    with pytest.raises(ConfigError, match="shot_sweep"):
        job_overrides("nope")


def sweep_args(tmp_path: Path, *overrides: str, sweep_dir: str = "sweep") -> list[str]:
    """``infer.py -m`` with ``debug=smoke`` (tiny random llama, no logger), exact answers only, everything in
    ``tmp_path``."""
    paths = [f"paths.log_dir={tmp_path}/logs", f"paths.cache_dir={tmp_path}/cache"]
    return ["-m", "debug=smoke", "task.kinds=[exact]", *paths, f"hydra.sweep.dir={tmp_path}/{sweep_dir}", *overrides]


def sweep(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """The sweep in a subprocess (its launcher starts the jobs' processes)."""
    command = [sys.executable, "infer.py", *sweep_args(tmp_path, *overrides)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)


def journal(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_parallel_jobs_share_the_cache_without_lost_or_duplicated_records(tmp_path):
    # two processes at once over overlapping questions: the same requests race into one SQLite cache
    limits = (2, 3)
    grid = f"data.limit={','.join(map(str, limits))}"
    first = sweep(tmp_path, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", grid)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "database is locked" not in first.stderr
    runs = sorted((tmp_path / "sweep").glob("[0-9]"))
    assert len(runs) == len(limits)
    questions = json.loads(demo_golden_path().read_text())["questions"]
    hashes = set()
    for run, limit in zip(runs, limits, strict=True):
        records = journal(run)
        keys = Counter((r["id"], r["kind"]) for r in records)
        assert len(keys) == len(records) and max(keys.values()) == 1  # no duplicate
        assert all(r["error"] is None for r in records)
        assert len(records) == sum(q["type"] != "summary" for q in questions[:limit])  # one exact answer each
        hashes |= {r["prompt_hash"] for r in records}
    with sqlite3.connect(tmp_path / "cache" / "completions.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == len(hashes)

    # the same grid again, its jobs one after another in this process
    assert run_script("infer", *sweep_args(tmp_path, grid, sweep_dir="again")) == 0
    again = sorted((tmp_path / "again").glob("[0-9]"))
    assert len(again) == len(limits)
    for run in again:
        assert all(r["cached"] for r in journal(run)), "a rerun of the sweep makes no model call"


@pytest.mark.slow
def test_submitit_local_launcher_runs_the_sweep(tmp_path):
    result = sweep(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "data.limit=1,2")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "sweep").glob("[0-9]"))
    assert len(runs) == 2
    for run in runs:
        metrics = read_metrics(run).flat()
        assert metrics["accounting.errors"] == 0 and metrics["run.questions"] in (1, 2)
    assert (tmp_path / "sweep" / "summary.csv").is_file()
