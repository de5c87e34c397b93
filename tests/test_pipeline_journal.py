"""The per-question journal keeps finished work across kills and retries failures."""

import json

from bioqa.pipeline.accounting import summarize_records
from bioqa.pipeline.journal import PredictionJournal


def _rec(qid, kind="exact", error=None, **extra):
    base = {"id": qid, "type": "yesno", "kind": kind, "error": error, "parse_ok": error is None}
    return {**base, "prompt_tokens": 10, "completion_tokens": 2, "cost_usd": 0.5, "latency_s": 1.0, **extra}


def test_records_survive_reopen_and_errors_are_not_done(tmp_path):
    path = tmp_path / "predictions.jsonl"
    with PredictionJournal(path) as journal:
        journal.append(_rec("q1"))
        journal.append(_rec("q2", error="timeout"))
    reopened = PredictionJournal(path)
    assert reopened.done("q1", "exact")["id"] == "q1"
    assert reopened.done("q2", "exact") is None  # failed: retried next run
    assert reopened.done("q1", "ideal") is None
    reopened.append(_rec("q2"))
    reopened.close()
    latest = {r["id"]: r for r in PredictionJournal(path).records()}
    assert latest["q2"]["error"] is None


def test_truncated_last_line_from_a_kill_is_ignored(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text(json.dumps(_rec("q1")) + "\n" + '{"id": "q2", "kind": "ex')
    with PredictionJournal(path) as journal:
        assert journal.done("q1", "exact") is not None
        assert journal.done("q2", "exact") is None
        journal.append(_rec("q2"))
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["id"] == "q2"  # the new record starts on its own line


def test_accounting_counts_costs_latency_and_parse_failures():
    records = [
        _rec("q1"),
        _rec("q2", parse_ok=False, latency_s=3.0),
        _rec("q3", cached=True, cost_usd=0.0, latency_s=9.0),
        _rec("q4", error="rate limited"),
    ]
    summary = summarize_records(records, wall_time_s=30.0)
    assert summary["requests"] == 4 and summary["cached"] == 1 and summary["errors"] == 1
    assert summary["cost_usd"] == 1.5
    assert summary["latency_p50_s"] == 2.0  # cached and failed calls excluded: [1.0, 3.0]
    assert summary["parse_failure_rate"] == 1 / 3
    assert summary["parse_failure_rate.yesno.exact"] == 1 / 3
    assert summary["questions_per_minute"] == 8.0
    resumed = summarize_records(records, wall_time_s=30.0, resumed={("q1", "exact"), ("q2", "exact")})
    assert resumed["resumed"] == 2 and resumed["questions_per_minute"] == 4.0  # q3, q4 answered in 30 s


def test_answering_returns_only_this_runs_items_and_reuses_the_journal(tmp_path):
    from bioqa.data import load_questions
    from bioqa.models.embedded import SMOLLM2_GGUF, smollm2_dir
    from bioqa.models.hf import HFBackend
    from bioqa.pipeline.answering import AnsweringConfig, answer_questions
    from bioqa.prompts import PromptBuilder, PromptConfig
    from bioqa.resources import demo_golden_path

    backend = HFBackend.from_random_config(smollm2_dir(), SMOLLM2_GGUF, hidden_size=32, num_hidden_layers=1)
    questions = [q for q in load_questions(demo_golden_path()) if q.type == "yesno"][:3]
    template = {"system": "", "user": "{snippets} {question}", "answer": "{answer}"}
    templates = {"exact": {"yesno": template, "factoid": template, "list": template}}
    templates["ideal"] = {t: template for t in ("yesno", "factoid", "list", "summary")}
    builder = PromptBuilder(PromptConfig.from_dict({"templates": templates, "structured": True}))
    config = AnsweringConfig(kinds=("exact",), max_new_tokens={"exact": 8, "ideal": 8})
    with PredictionJournal(tmp_path / "p.jsonl") as journal:
        first = answer_questions(questions, backend, builder.build, journal, config, progress=False)
    assert [r["id"] for r in first] == [q.id for q in questions]
    with PredictionJournal(tmp_path / "p.jsonl") as journal:
        again = answer_questions(questions[1:2], backend, builder.build, journal, config, progress=False)
    assert again == first[1:2]  # one question asked for, one returned, straight from the journal
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 3
