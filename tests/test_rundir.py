"""The run-directory contract: metrics.json is written in one versioned shape and every shape ever written reads
back through one loader."""

from __future__ import annotations

import json

import pytest

from bioqa.rundir import (
    METRICS,
    SCHEMA,
    RunMetrics,
    parse_metrics,
    read_metrics,
    write_atomically,
    write_json,
    write_metrics,
)

EVALUATION = {"golden": "g.json", "system": "s.json", "phases": ["B"], "version": 9, "counts": {"yesno": 2}}


def test_written_shape_is_versioned_and_reads_back(tmp_path):
    written = RunMetrics(
        measures={"yesno.acc": 0.5, "list.f1": None},
        ci={"yesno.acc": [0.0, 1.0]},
        facts={"accounting.requests": 4, "accounting.errors.timeout": 1, "run.model": "m", "phase_a.documents.n": 3},
        evaluation=EVALUATION,
    )
    write_metrics(tmp_path, written)
    payload = json.loads((tmp_path / METRICS).read_text())
    assert payload["schema"] == SCHEMA == 2
    assert payload["metrics"] == {"yesno.acc": 0.5, "list.f1": None} and payload["ci"] == {"yesno.acc": [0.0, 1.0]}
    assert payload["accounting"] == {"requests": 4, "errors.timeout": 1} and payload["run"] == {"model": "m"}
    assert payload["phase_a"] == {"documents.n": 3} and payload["evaluation"] == EVALUATION
    assert read_metrics(tmp_path) == written
    assert written.flat() == {**written.facts, **written.measures, "ci": written.ci}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (  # infer and ensemble before the schema: everything flat
            {"accounting.requests": 4, "run.model": "m", "ensemble.members": ["a"], "yesno.acc": 0.5, "ci": {}},
            RunMetrics(
                measures={"yesno.acc": 0.5},
                facts={"accounting.requests": 4, "run.model": "m", "ensemble.members": ["a"]},
            ),
        ),
        (  # evaluate before the schema: measures nested, the evaluator's record at the top
            {**EVALUATION, "metrics": {"yesno.acc": 1.0}, "ci": {"yesno.acc": [1.0, 1.0]}, "warnings": []},
            RunMetrics(
                measures={"yesno.acc": 1.0}, ci={"yesno.acc": [1.0, 1.0]}, evaluation={**EVALUATION, "warnings": []}
            ),
        ),
        ({"train/loss": 1.5, "val/loss": 2.0}, RunMetrics(training={"train/loss": 1.5, "val/loss": 2.0})),  # training
    ],
    ids=["infer-flat", "evaluate-nested", "training"],
)
def test_old_shapes_read_through_the_one_loader(payload, expected):
    assert parse_metrics(payload) == expected


@pytest.mark.parametrize("payload", [[1, 2], "text", None])
def test_a_payload_that_is_not_an_object_is_refused(payload):
    with pytest.raises(ValueError, match="not a JSON object"):
        parse_metrics(payload)


@pytest.mark.parametrize("key", ["requests", "metrics.x", "schema.x"])
def test_a_fact_without_a_section_of_its_own_is_refused(key):
    with pytest.raises(ValueError, match=f"run fact '{key}'"):
        RunMetrics(facts={key: 1}).to_json()


def test_an_atomic_write_that_fails_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = write_json(tmp_path / "sub" / "submission.json", {"questions": [1]})

    def fail_halfway(tmp):
        tmp.write_text('{"questions": [', encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, fail_halfway)
    assert json.loads(path.read_text(encoding="utf-8")) == {"questions": [1]}
    assert [p.name for p in path.parent.iterdir()] == ["submission.json"]


def test_an_atomic_write_onto_a_directory_names_the_directory_and_leaves_nothing(tmp_path):
    (tmp_path / "submission.json").mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        write_json(tmp_path / "submission.json", {"questions": []})
    assert caught.value.filename == str(tmp_path / "submission.json")
    assert [p.name for p in tmp_path.iterdir()] == ["submission.json"]
