"""CONTRIBUTING.md's worked examples. "Add an answer style": its two files, exactly as printed, compose into
``infer.py``'s config, build prompts with the style's schema and shots, and parse replies with the style. "Add a
measure": its module and test, exactly as printed, put the measure into metrics.json with a CI, the sweep summary
and the sweep report (results, paired differences, tables) with no other edit."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import CONF, ROOT, ScriptedBackend, compose_config, in_tmp

import bioqa.answers
import bioqa.evaluation.measures
from bioqa.analysis.report import build_report
from bioqa.analysis.sweep import write_summary
from bioqa.analysis.synthetic import replicate_golden, synthetic_run
from bioqa.answers import answer_style, registry
from bioqa.config.common import check_prompt
from bioqa.evaluation import registry as metric_registry
from bioqa.pipeline.answering import AnsweringConfig, answer_questions
from bioqa.pipeline.journal import PredictionJournal
from bioqa.prompts import PromptBuilder
from bioqa.resources import demo_golden_path
from bioqa.rundir import read_metrics

#: A fenced block whose first line is a comment naming the file it is.
BLOCK = re.compile(r"```(?:python|yaml)\n# (?P<path>\S+)\n(?P<body>.*?)```", re.DOTALL)


def section(title: str) -> str:
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    return text.split(f"## {title}")[1].split("\n## ")[0]


def write_blocks(title: str, root: Path) -> dict[str, Path]:
    """The files of a CONTRIBUTING section's code blocks, written under ``root``: ``{path as printed: file}``."""
    written = {}
    for block in BLOCK.finditer(section(title)):
        target = root / block["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"# {block['path']}\n{block['body']}", encoding="utf-8")
        written[block["path"]] = target
    return written


@pytest.fixture
def example(tmp_path, monkeypatch) -> dict[str, Path]:
    """The example's files written under ``tmp_path`` (the module on ``bioqa.answers``' path, the config in a copy
    of ``conf/``), so the checkout is never touched."""
    shutil.copytree(CONF, tmp_path / "conf")
    written = write_blocks("Add an answer style", tmp_path)
    monkeypatch.setattr(bioqa.answers, "__path__", [*bioqa.answers.__path__, str(tmp_path / "bioqa" / "answers")])
    monkeypatch.setattr(registry, "_STYLES", dict(registry._STYLES))
    return written


def test_the_example_is_two_files(example):
    assert sorted(example) == ["bioqa/answers/yesno_confidence.py", "conf/prompt/yesno_confidence.yaml"]


@pytest.fixture
def cfg(example, tmp_path):
    overrides = ["model=tiny-llama", "prompt=yesno_confidence", "logger=none"]
    return in_tmp(compose_config("infer", overrides, True, config_dir=tmp_path / "conf"), tmp_path)


@pytest.mark.parametrize("structured", [True, False])
def test_the_style_shapes_prompts_and_shots(cfg, demo_questions, structured):
    config = check_prompt(cfg.prompt, "demo")
    builder = PromptBuilder(config.__class__(**{**config.__dict__, "structured": structured}))
    question = next(q for q in demo_questions if q.type == "yesno")
    built = builder.build(question, "exact")
    assert built.answer_style == "yesno_confidence"
    assert "confidence" in built.messages[-1]["content"] and len(built.shot_ids) == 1
    shot_answer = json.loads(built.messages[-2]["content"])
    assert shot_answer["confidence"] == "high" and shot_answer["answer"] in ("yes", "no")
    if structured:
        schema = built.json_schema
        assert schema["properties"]["confidence"]["enum"] == ["low", "medium", "high"]
        assert schema["required"] == ["answer", "confidence"] and schema["additionalProperties"] is False
    else:
        assert built.json_schema is None
    for other in ("factoid", "summary"):  # the other templates keep their default styles
        q = next(q for q in demo_questions if q.type == other)
        assert builder.build(q, "ideal").answer_style == "ideal"


@pytest.mark.parametrize(
    ("reply", "value", "details", "method"),
    [
        ('{"answer": "no", "confidence": "low"}', "no", {"confidence": "low"}, "json"),
        ('Sure: {"answer": "Yes", "confidence": "MEDIUM"}', "yes", {"confidence": "medium"}, "json"),
        ('{"answer": "yes", "confidence": 0.9}', "yes", None, "json"),  # not one of the three: no details
        ("yes", "yes", None, "text"),  # the paper's bare word still parses
    ],
)
def test_the_style_parses_replies(example, reply, value, details, method):
    parsed = answer_style("yesno_confidence").parse(reply)
    assert (parsed.ok, parsed.value, parsed.details, parsed.method) == (True, value, details, method)


def test_answers_are_recorded_with_their_style_and_confidence(cfg, demo_questions, tmp_path):
    builder = PromptBuilder(check_prompt(cfg.prompt, "demo"))
    questions = [q for q in demo_questions if q.type == "yesno"][:2]
    backend = ScriptedBackend(lambda user: '{"answer": "no", "confidence": "low"}')
    journal = PredictionJournal(tmp_path / "predictions.jsonl")
    records = answer_questions(questions, backend, builder.build, journal, AnsweringConfig(kinds=("exact",)), False)
    assert [r["answer_style"] for r in records] == ["yesno_confidence"] * 2
    assert all(r["parsed"] == "no" and r["parse_details"] == {"confidence": "low"} for r in records)
    assert backend.requests[0].json_schema["properties"]["confidence"]["enum"] == ["low", "medium", "high"]


# ------------------------------------------------------------------------------------------------ add a measure


@pytest.fixture
def measure_example(tmp_path, monkeypatch) -> dict[str, Path]:
    """The "add a measure" files written under ``tmp_path``, the module on ``bioqa.evaluation.measures``' path and
    the registry collected again (and once more after the test, without it)."""
    written = write_blocks("Add a measure", tmp_path)
    extra = str(tmp_path / "bioqa" / "evaluation" / "measures")
    monkeypatch.setattr(bioqa.evaluation.measures, "__path__", [*bioqa.evaluation.measures.__path__, extra])
    metric_registry.registry.cache_clear()
    yield written
    sys.modules.pop("bioqa.evaluation.measures.list_jaccard", None)
    metric_registry.registry.cache_clear()


def test_the_measure_example_is_one_file_plus_its_test(measure_example):
    assert sorted(measure_example) == ["bioqa/evaluation/measures/list_jaccard.py", "tests/test_list_jaccard.py"]
    spec = importlib.util.spec_from_file_location("test_list_jaccard", measure_example["tests/test_list_jaccard.py"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_list_jaccard()  # the example's own test passes


def test_the_measure_reaches_metrics_cis_summary_and_report(measure_example, tmp_path):
    golden = replicate_golden(demo_golden_path(), tmp_path / "golden" / "DEMO1_golden.json", 2)
    sweep = tmp_path / "sweep"
    for model, skill in (("synthetic-a", 0.3), ("synthetic-b", 0.8)):
        synthetic_run(sweep / model, golden, model, skill=skill, bootstrap=50)
    metrics = read_metrics(sweep / "synthetic-a").flat()
    rows = [json.loads(line) for line in (sweep / "synthetic-a" / "per_question.jsonl").read_text().splitlines()]
    lists = [r for r in rows if "list.f1" in r]
    expected = np.mean(
        [p * r / (p + r - p * r) if p + r else 0.0 for p, r in ((x["list.precision"], x["list.recall"]) for x in lists)]
    )
    assert lists and metrics["list.jaccard"] == pytest.approx(expected, abs=1e-12)
    low, high = metrics["ci"]["list.jaccard"]
    assert low <= metrics["list.jaccard"] <= high

    summary = write_summary(sweep)
    assert [row["list.jaccard"] for row in summary] == [
        read_metrics(sweep / m).measures["list.jaccard"] for m in ("synthetic-a", "synthetic-b")
    ]
    assert "list.jaccard" in (sweep / "summary.csv").read_text().splitlines()[0]

    report = build_report(sweep, out_dir=tmp_path / "report", reference="synthetic-a 0-shot", bootstrap=50)
    results = pd.read_csv(report.out_dir / "results.csv")
    jaccard = results[results["measure"] == "list.jaccard"]
    assert set(jaccard["batch"]) == {"DEMO1", "pooled"} and jaccard["ranking"].all()
    assert "list.jaccard" in set(pd.read_csv(report.out_dir / "paired.csv")["measure"])
    assert "list.jaccard" in (report.out_dir / "report.md").read_text().split("## Pooled over batches")[1]
