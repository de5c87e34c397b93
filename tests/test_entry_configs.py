"""The conftest config fixtures drive the entry points' functions in-process (the subprocess smoke tests of
``infer.py`` and ``evaluate.py`` are in test_infer.py and test_evaluate_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bioqa.config.evaluate import validate_evaluate_config
from bioqa.evaluation.cli import evaluate_from_config
from bioqa.pipeline.app import infer_from_config
from bioqa.rundir import read_metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_infer_from_config_on_three_demo_questions(cfg_infer):
    run_dir = Path(cfg_infer.paths.output_dir)
    infer_from_config(cfg_infer, run_dir)
    records = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert {r["id"] for r in records} and len({r["id"] for r in records}) == cfg_infer.data.limit
    assert {r["answer_style"] for r in records} <= {"yesno", "factoid", "entity_list", "ideal"}
    assert read_metrics(run_dir).flat()["accounting.requests"] == len(records)
    assert Path(cfg_infer.cache.path).is_file()  # the completion cache went under tmp_path, not the checkout


def test_evaluate_config_scores_the_golden_file_against_itself(cfg_evaluate):
    cfg_evaluate.rouge = False
    report = evaluate_from_config(validate_evaluate_config(cfg_evaluate), cfg_evaluate.paths.output_dir)
    assert report.metrics["yesno.acc"] == 1.0 and report.metrics["factoid.strict_acc"] == 1.0
    assert (Path(cfg_evaluate.paths.output_dir) / "metrics.json").is_file()


def test_train_config_is_tiny_and_writes_under_tmp_path(cfg_train, tmp_path):
    assert cfg_train.model.train.base._target_.endswith("random_model_4bit") and cfg_train.trainer.max_steps == 2
    assert cfg_train.logger.csv.save_dir == str(tmp_path / "run")
