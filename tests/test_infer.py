"""infer.py end to end on the embedded demo batch with a tiny random model: outputs, structured decoding, resume
after a kill, a live run directory kept from a second run, failed requests, phase A+, a shot sweep.

Runs go through infer.py's ``main`` in this process (``run_script``: Hydra parses the command line, composes
``conf/`` and creates the run directory as from a shell). A subprocess only where a process is the subject: one
smoke run of the script, a run killed mid-way, a live run holding its directory."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import run_script

from bioqa.evaluation import evaluate_submission
from bioqa.resources import demo_golden_path
from bioqa.rundir import read_metrics

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]  # seconds each, a minute or so in all

ROOT = Path(__file__).resolve().parent.parent


def infer_args(tmp_path: Path, *overrides: str) -> list[str]:
    """``debug=smoke`` (the tiny random llama, 0-shot, 2 demo questions, no logger); logs and cache in ``tmp_path``."""
    return ["debug=smoke", f"paths.log_dir={tmp_path}/logs", f"paths.cache_dir={tmp_path}/cache", *overrides]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_script_runs_in_a_subprocess(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "infer.py", *infer_args(tmp_path, f"hydra.run.dir={run_dir}")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "yesno.macro_f1" in result.stdout  # the score table is printed
    assert len(json.loads((run_dir / "submission.json").read_text())["questions"]) == 2
    assert read_metrics(run_dir).flat()["accounting.errors"] == 0


def test_phase_b_run_writes_an_official_submission_metrics_and_provenance(tmp_path, capsys):
    run_dir = tmp_path / "run"
    overrides = ["prompt=1shot", "data.limit=6", "evaluation.bootstrap=100", f"hydra.run.dir={run_dir}"]
    assert run_script("infer", *infer_args(tmp_path, *overrides)) == 0
    records = lines(run_dir / "predictions.jsonl")
    questions = json.loads(demo_golden_path().read_text())["questions"][:6]
    expected = sum(1 + (q["type"] != "summary") for q in questions)
    assert len(records) == expected and {r["id"] for r in records} == {q["id"] for q in questions}
    for record in records:
        assert record["prompt_hash"] and record["prompt_tokens"] > 0 and record["error"] is None
    submission = json.loads((run_dir / "submission.json").read_text())
    report = evaluate_submission(demo_golden_path(), submission, bootstrap=0)  # never rejected
    metrics = read_metrics(run_dir).flat()
    assert metrics["accounting.requests"] == expected
    assert 0.0 <= metrics["accounting.parse_failure_rate"] <= 1.0
    assert metrics["yesno.macro_f1"] == pytest.approx(report.metrics["yesno.macro_f1"])
    assert "yesno.acc" in metrics["ci"]
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert str(demo_golden_path()) in provenance["data"] and provenance["packages"]["transformers"]
    assert (run_dir / ".hydra" / "config.yaml").exists()
    assert "yesno.macro_f1" in capsys.readouterr().out  # the score table is printed


def test_structured_decoding_leaves_no_unparsable_exact_answers(tmp_path):
    # A random model never chooses to stop: only the schema's bounds (5 entities of <= 100 characters) end its
    # JSON, within 5 * 103 + 20 tokens.
    run_dir = tmp_path / "run"
    overrides = ["data.limit=null", "data.types=[yesno,factoid]", "task.kinds=[exact]", "prompt=1shot"]
    overrides += ["answering.max_new_tokens.exact=640", f"hydra.run.dir={run_dir}"]
    assert run_script("infer", *infer_args(tmp_path, *overrides)) == 0
    records = lines(run_dir / "predictions.jsonl")
    assert len(records) == 9 and all(r["parse_ok"] for r in records), [
        r["completion"] for r in records if not r["parse_ok"]
    ]


def test_killed_run_resumes_without_recomputing_or_paying_twice(tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["data.limit=6", "answering.chunk_size=1", "answering.max_new_tokens.ideal=160"]
    args = infer_args(tmp_path, *overrides)
    proc = subprocess.Popen(
        [sys.executable, "infer.py", *args, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    journal = run_dir / "predictions.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not journal.exists() or len(lines(journal)) < 3):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = lines(journal)
    assert 3 <= len(before) < 12, "the run must be killed mid-way"  # 6 questions: 12 requests
    assert not (run_dir / "metrics.json").exists()

    assert run_script("infer", *args, f"hydra.run.dir={run_dir}") == 0  # same run directory: resumes
    after = lines(journal)
    done_keys = {(r["id"], r["kind"]) for r in before}
    assert after[: len(before)] == before  # nothing lost, nothing rewritten
    assert len(after) == 12 and not done_keys & {(r["id"], r["kind"]) for r in after[len(before) :]}
    resumed = read_metrics(run_dir).flat()
    assert resumed["accounting.resumed"] == len(before) and resumed["accounting.requests"] == 12

    fresh = tmp_path / "fresh"
    assert run_script("infer", *args, f"hydra.run.dir={fresh}") == 0  # new run dir, same cache: no model calls
    metrics = read_metrics(fresh).flat()
    assert metrics["accounting.from_cache"] == metrics["accounting.requests"] == 12
    for key in ("accounting.wall_time_s", "accounting.latency_p50_s", "accounting.questions_per_minute"):
        assert metrics[key] == resumed[key], key  # as the answers were produced, not as they were looked up


def chat_reply(content: str) -> dict:
    """An OpenAI chat completion as a server returns it."""
    message = {"role": "assistant", "content": content}
    usage = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "local-model",
        "usage": usage,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }


def served_args(tmp_path: Path, url: str, *overrides: str) -> list[str]:
    """``infer_args`` with the model behind the loopback OpenAI-compatible server at ``url``, no retries."""
    model = ["model=openai-compatible", f"model.backend.api_base={url}/v1", "+model.backend.max_retries=0"]
    return infer_args(tmp_path, *model, *overrides)


def test_a_second_run_is_refused_while_a_live_process_holds_the_run_dir(tmp_path, json_server, capsys):
    asked, release = threading.Event(), threading.Event()

    def respond(path, body, headers):
        asked.set()
        release.wait(timeout=300)  # the first run stays live, in the middle of its requests, until released
        return 200, chat_reply('{"answer": "yes"}')

    run_dir = tmp_path / "run"
    args = served_args(tmp_path, json_server(respond), f"hydra.run.dir={run_dir}", "+model.backend.timeout_s=300")
    first = subprocess.Popen(
        [sys.executable, "infer.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        assert asked.wait(timeout=300), "the first run never called the model"
        capsys.readouterr()
        code = run_script("infer", *args, "answering.temperature=0.5")
    finally:
        release.set()
    assert first.wait(timeout=300) == 0, first.stderr.read()[-3000:]
    assert code == 2
    assert re.fullmatch(
        rf"infer\.py: error: {run_dir} is in use by pid {first.pid} .*",
        capsys.readouterr().err.strip().splitlines()[-1],
    )
    keys = [(r["id"], r["kind"]) for r in lines(run_dir / "predictions.jsonl")]
    assert len(keys) == len(set(keys)) == 4  # each request made and journaled once
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert (
        "temperature: 0.0" in config and "temperature: 0.5" not in config
    )  # the refused run put back the first run's record


def test_a_run_whose_requests_all_failed_exits_3_after_writing_its_outputs(tmp_path, json_server, capsys):
    url = json_server(lambda path, body, headers: (500, {"error": {"message": "overloaded", "type": "server_error"}}))
    run_dir = tmp_path / "run"
    capsys.readouterr()
    assert run_script("infer", *served_args(tmp_path, url, f"hydra.run.dir={run_dir}")) == 3
    summary, error = capsys.readouterr().err.strip().splitlines()[-2:]
    assert summary == "run: requests: 4 — answered 0, failed 4, cached 0, resumed 0, truncated 0"
    assert error.startswith("infer.py: error: 4 of 4 requests failed (allowed: errors.max_fraction=0)")
    metrics = read_metrics(run_dir).flat()
    assert metrics["accounting.errors"] == 4 and metrics["accounting.questions_per_minute"] == 0.0
    assert (run_dir / "submission.json").exists() and len(lines(run_dir / "predictions.jsonl")) == 4


def test_phase_a_plus_answers_from_our_own_retrieval(tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["task=phase_a_plus", "retrieval=bm25", "prompt=1shot", "data.limit=4", f"hydra.run.dir={run_dir}"]
    assert run_script("infer", *infer_args(tmp_path, *overrides)) == 0
    submission = json.loads((run_dir / "submission.json").read_text())["questions"]
    assert all(1 <= len(q["documents"]) <= 10 and 1 <= len(q["snippets"]) <= 10 for q in submission)
    metrics = read_metrics(run_dir).flat()
    assert metrics["documents.MAP"] > 0 and "snippets.MF1" in metrics and "yesno.acc" in metrics


def test_shot_sweep_writes_a_summary_and_offline_wandb_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep_dir = tmp_path / "sweep"
    swept = ["-m", "model=tiny-llama", "prompt=0shot,1shot"]  # the summary's first columns, in this order
    overrides = ["logger=wandb", "data.limit=3", "task.kinds=[exact]", f"hydra.sweep.dir={sweep_dir}"]
    assert run_script("infer", *swept, *infer_args(tmp_path, *overrides)) == 0
    summary = (sweep_dir / "summary.csv").read_text().splitlines()
    header = summary[0].split(",")
    assert len(summary) == 3 and header[:3] == ["run", "model", "prompt"] and "yesno.macro_f1" in header
    assert [row.split(",")[2] for row in summary[1:]] == ["0shot", "1shot"]
    for job in ("0", "1"):
        assert list((sweep_dir / job / "wandb").glob("offline-run-*")), "each run is logged to W&B offline"
