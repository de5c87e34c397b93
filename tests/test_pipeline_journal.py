"""The per-question journal keeps finished work across kills and crashes, retries failures, and reuses a record
only for the very request it answered; accounting counts what happened to every request."""

import json

import pytest
from helpers import ScriptedBackend

from bioqa.data import load_questions
from bioqa.models import Completion
from bioqa.pipeline.accounting import auxiliary_calls, summarize_records, summary_line
from bioqa.pipeline.answering import AnsweringConfig, answer_questions
from bioqa.pipeline.journal import PredictionJournal
from bioqa.prompts import PromptBuilder, PromptConfig
from bioqa.resources import demo_golden_path


def _rec(qid, kind="exact", error=None, **extra):
    base = {"id": qid, "type": "yesno", "kind": kind, "error": error, "parse_ok": error is None}
    figures = {"prompt_tokens": 10, "completion_tokens": 2, "cost_usd": 0.5, "latency_s": 1.0, "wall_s": 10.0}
    return {**base, **figures, **extra}


def test_records_survive_reopen_and_the_latest_one_counts(tmp_path):
    path = tmp_path / "predictions.jsonl"
    with PredictionJournal(path) as journal:
        journal.append(_rec("q1"))
        journal.append(_rec("q2", error="timeout"))
    reopened = PredictionJournal(path)
    assert reopened.latest("q1", "exact")["error"] is None
    assert reopened.latest("q2", "exact")["error"] == "timeout"  # kept for the record
    assert reopened.latest("q1", "ideal") is None
    reopened.append(_rec("q2"))
    reopened.close()
    latest = {r["id"]: r for r in PredictionJournal(path).records()}
    assert latest["q2"]["error"] is None


def test_truncated_last_line_from_a_kill_is_ignored(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text(json.dumps(_rec("q1")) + "\n" + '{"id": "q2", "kind": "ex')
    with PredictionJournal(path) as journal:
        assert journal.latest("q1", "exact") is not None
        assert journal.latest("q2", "exact") is None
        journal.append(_rec("q2"))
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["id"] == "q2"  # the new record starts on its own line


def test_accounting_counts_costs_latency_and_parse_failures():
    hit = {"cached": True, "cost_usd": 0.0, "latency_s": 0.001, "wall_s": 0.002}  # this run: a lookup
    original = {"original_cost_usd": 0.5, "original_latency_s": 5.0, "original_wall_s": 20.0}
    records = [
        _rec("q1"),
        _rec("q2", parse_ok=False, latency_s=3.0),
        _rec("q3", **hit, **original),
        _rec("q4", error="rate limited"),
    ]
    summary = summarize_records(records, rerun_wall_time_s=0.5)
    assert summary["requests"] == 4 and summary["from_cache"] == 1 and summary["errors"] == 1
    assert summary["answered"] == 3 and summary["errors.unknown"] == 1
    assert summary["cost_usd"] == 2.0 and summary["rerun_cost_usd"] == 1.5  # q3's original call cost 0.5
    assert summary["latency_p50_s"] == 3.0  # answers as produced (q3 by its original call), failed excluded
    assert summary["parse_failure_rate"] == 1 / 3
    assert summary["parse_failure_rate.yesno.exact"] == 1 / 3
    # 50 s of wall-time shares (q3's original 20 s, q4's failed 10 s included); q4 failed: not counted
    assert summary["wall_time_s"] == 50.0 and summary["rerun_wall_time_s"] == 0.5
    assert summary["questions_per_minute"] == 3.6 and summary["requests_per_minute"] == 3.6
    resumed = summarize_records(records, rerun_wall_time_s=0.01, resumed={("q1", "exact"), ("q2", "exact")})
    assert resumed["resumed"] == 2 and resumed["rerun_cost_usd"] == 0.5  # q4's failed call: paid now
    for key in ("cost_usd", "latency_p50_s", "wall_time_s", "questions_per_minute", "requests_per_minute"):
        assert resumed[key] == summary[key], key  # a resume reports how the answers were produced, unchanged


@pytest.mark.parametrize(
    ("record", "latency_p50_s", "has_wall"),
    [
        ({"cached": True, "cost_usd": 0.0, "latency_s": 0.001}, 1.0, False),  # a cache row older than the figures
        ({"wall_s": None}, 1.0, False),  # a journal record older than wall-time shares
        ({"cached": True, "original_latency_s": 7.0, "original_wall_s": 4.0}, 4.0, True),
    ],
)
def test_figures_an_answer_does_not_carry_are_left_out_never_zero(record, latency_p50_s, has_wall):
    summary = summarize_records([_rec("q1"), _rec("q2", **record)], rerun_wall_time_s=0.1)
    assert summary["latency_p50_s"] == latency_p50_s
    assert ("wall_time_s" in summary) is has_wall and ("questions_per_minute" in summary) is has_wall


def test_a_run_whose_requests_all_failed_reports_no_throughput():
    records = [_rec(f"q{i}", error="APIError", error_kind="server") for i in range(5)]
    summary = summarize_records(records, rerun_wall_time_s=0.5)
    assert summary["errors"] == summary["errors.server"] == 5 and summary["answered"] == 0
    assert summary["questions_per_minute"] == summary["requests_per_minute"] == 0.0
    assert summary_line(summary) == "requests: 5 — answered 0, failed 5, cached 0, resumed 0, truncated 0"


def test_truncated_answers_are_counted_and_the_ideal_ones_apart():
    records = [
        _rec("q1", kind="exact", finish_reason="length"),
        _rec("q1", kind="ideal", finish_reason="length"),
        _rec("q2", kind="ideal", finish_reason="stop"),
        _rec("q3", kind="ideal", error="cut", finish_reason="length"),  # failed: counted as failed only
    ]
    summary = summarize_records(records)
    assert (summary["truncated"], summary["truncated_ideal"], summary["errors"]) == (2, 1, 1)
    assert "truncated 2" in summary_line(summary)


def test_a_phase_a_run_ends_with_its_phase_a_calls_not_only_its_zero_answer_requests():
    """task=phase_a makes no answer request: its line said "requests: 0 — answered 0, failed 0" right before the
    error "23 of 55 requests failed"."""
    facts = {"phase_a.model_calls": 55, "phase_a.model_errors": 19, "phase_a.unusable": 4}
    line = summary_line(summarize_records([]), auxiliary_calls(facts))
    assert line.endswith("truncated 0; Phase A / Wikipedia calls and fetches: 55, failed 23")


def test_answering_returns_only_this_runs_items_and_reuses_the_journal(tmp_path, tokenizer_dir, capsys):
    from bioqa.data import load_questions
    from bioqa.models.hf import HFBackend
    from bioqa.pipeline.answering import AnsweringConfig, answer_questions
    from bioqa.prompts import PromptBuilder, PromptConfig
    from bioqa.resources import demo_golden_path

    backend = HFBackend.from_random_config(tokenizer_dir, hidden_size=32, num_hidden_layers=1)
    questions = [q for q in load_questions(demo_golden_path()) if q.type == "yesno"][:3]
    template = {"system": "", "user": "{snippets} {question}", "answer": "{answer}"}
    templates = {"exact": {"yesno": template, "factoid": template, "list": template}}
    templates["ideal"] = {t: template for t in ("yesno", "factoid", "list", "summary")}
    builder = PromptBuilder(PromptConfig.from_dict({"templates": templates, "structured": True}))
    config = AnsweringConfig(kinds=("exact",), max_new_tokens={"exact": 64, "ideal": 8})  # room to close the JSON
    with PredictionJournal(tmp_path / "p.jsonl") as journal:
        first = answer_questions(questions, backend, builder.build, journal, config, progress=False)
    assert [r["id"] for r in first] == [q.id for q in questions]
    with PredictionJournal(tmp_path / "p.jsonl") as journal:
        again = answer_questions(questions[1:2], backend, builder.build, journal, config, progress=True)
    assert again == first[1:2]  # one question asked for, one returned, straight from the journal
    assert "answering" not in capsys.readouterr().err  # nothing to ask: no empty progress bar
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 3


TEMPLATE = {"system": "", "user": "{snippets} {question}", "answer": "{answer}"}


def builder(user: str = TEMPLATE["user"]) -> PromptBuilder:
    template = {**TEMPLATE, "user": user}
    templates = {"exact": {t: template for t in ("yesno", "factoid", "list")}}
    templates["ideal"] = {t: template for t in ("yesno", "factoid", "list", "summary")}
    return PromptBuilder(PromptConfig.from_dict({"templates": templates, "structured": True}))


@pytest.fixture(scope="module")
def yesno():
    questions = [q for q in load_questions(demo_golden_path()) if q.type == "yesno"]
    assert len(questions) == 4
    return questions


EXACT = AnsweringConfig(kinds=("exact",), max_new_tokens={"exact": 8, "ideal": 8})


def journal_ids(path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def test_every_completion_is_journaled_as_it_arrives_even_when_the_backend_dies_mid_chunk(tmp_path, yesno):
    path = tmp_path / "p.jsonl"
    dying = ScriptedBackend(crash_after=3, reverse=True)  # one chunk of 4; answers arrive last-first
    with PredictionJournal(path) as journal, pytest.raises(RuntimeError, match="backend died"):
        answer_questions(yesno, dying, builder().build, journal, EXACT, progress=False)
    assert journal_ids(path) == [q.id for q in yesno[::-1][:3]]  # all three answers received, in arrival order

    healthy = ScriptedBackend()
    with PredictionJournal(path) as journal:
        records = answer_questions(yesno, healthy, builder().build, journal, EXACT, progress=False)
    assert len(healthy.requests) == 1  # only the one never answered
    assert [r["id"] for r in records] == [q.id for q in yesno] and all(r["parse_ok"] for r in records)
    assert len(journal_ids(path)) == 4


def test_a_record_made_for_another_request_is_recomputed(tmp_path, yesno):
    path = tmp_path / "p.jsonl"
    with PredictionJournal(path) as journal:
        first = answer_questions(yesno, ScriptedBackend(), builder().build, journal, EXACT, progress=False)
    same, other_prompt, other_model = ScriptedBackend(), ScriptedBackend(), ScriptedBackend(name="other")
    with PredictionJournal(path) as journal:
        assert answer_questions(yesno, same, builder().build, journal, EXACT, progress=False) == first
        assert same.requests == []  # the very same requests: reused
        again = answer_questions(yesno, other_prompt, builder("Q: {question}").build, journal, EXACT, progress=False)
        answer_questions(yesno, other_model, builder("Q: {question}").build, journal, EXACT, progress=False)
    assert len(other_prompt.requests) == 4 and {r["prompt_hash"] for r in again}.isdisjoint(
        {r["prompt_hash"] for r in first}
    )
    assert len(other_model.requests) == 4  # same prompts, another model: recomputed too
    assert len(journal_ids(path)) == 12


def test_records_carry_the_backends_error_kind_and_finish_reason(tmp_path, yesno):
    def reply(request):
        completion = Completion(text="yes")
        completion.finish_reason = "length"
        return completion

    with PredictionJournal(tmp_path / "p.jsonl") as journal:
        records = answer_questions(
            yesno[:1], ScriptedBackend(complete=reply), builder().build, journal, EXACT, progress=False
        )
    assert records[0]["finish_reason"] == "length" and records[0]["error_kind"] is None
    assert records[0]["model"] == "scripted:s"


def test_a_request_the_backend_never_answered_is_recorded_as_failed(tmp_path, yesno):
    class Forgetful(ScriptedBackend):
        def stream(self, requests):
            yield from list(super().stream(requests))[:-1]

    with PredictionJournal(tmp_path / "p.jsonl") as journal:
        records = answer_questions(yesno[:3], Forgetful(), builder().build, journal, EXACT, progress=False)
    assert [bool(r["error"]) for r in records] == [False, False, True]


@pytest.mark.parametrize("chunk_size", [1, 2, 16])
def test_chunk_size_only_bounds_the_requests_handed_over_at_once(tmp_path, yesno, chunk_size):
    calls = []

    class Counting(ScriptedBackend):
        def stream(self, requests):
            calls.append(len(requests))
            yield from super().stream(requests)

    config = AnsweringConfig(kinds=("exact",), max_new_tokens={"exact": 8, "ideal": 8}, chunk_size=chunk_size)
    with PredictionJournal(tmp_path / "p.jsonl") as journal:
        records = answer_questions(yesno, Counting(), builder().build, journal, config, progress=False)
    assert max(calls) == min(chunk_size, 4) and sum(calls) == 4 and len(records) == 4
