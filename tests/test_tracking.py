"""Experiment tracking: metrics with CI bounds and a per-question table reach W&B (offline), texts only on request,
and the sweep dashboard builds without a network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bioqa.analysis.dashboard import sweep_workspace
from bioqa.analysis.sweep import headline_measures
from bioqa.loggers import build_loggers, log_run, per_question_table, run_summary, wandb_logger

METRICS = {
    "yesno.macro_f1": 0.5,
    "factoid.mrr": 0.25,
    "accounting.cost_usd": 0.01,
    "accounting.resumed": 0,
    "run.model": "m",
    "flag": True,
    "ci": {"yesno.macro_f1": [0.25, 0.75], "factoid.mrr": [None, None]},
}
ROWS = [{"id": "q1", "type": "yesno", "yesno.acc": 1.0}, {"id": "q2", "type": "factoid", "factoid.mrr": 0.5}]
TEXTS = {"q1": {"question": "Is SECRET-TEXT a gene?", "system_exact": "yes"}}


def test_run_summary_keeps_numbers_and_ci_bounds_and_drops_the_rest():
    summary = run_summary(METRICS)
    assert summary == {
        "yesno/macro_f1": 0.5,
        "factoid/mrr": 0.25,
        "accounting/cost_usd": 0.01,
        "accounting/resumed": 0.0,
        "yesno/macro_f1_ci_low": 0.25,
        "yesno/macro_f1_ci_high": 0.75,
    }


@pytest.mark.parametrize(
    ("texts", "has_text"),
    [(None, False), (TEXTS, True)],
)
def test_per_question_table_carries_texts_only_when_given(texts, has_text):
    columns, rows = per_question_table(ROWS, texts)
    assert columns[:2] == ["id", "type"] and {"yesno.acc", "factoid.mrr"} <= set(columns)
    assert len(rows) == 2
    assert ("question" in columns) is has_text
    assert any("SECRET-TEXT" in str(cell) for row in rows for cell in row) is has_text


@pytest.mark.parametrize(
    ("spec", "count"),
    [
        ({"log_texts": True}, 0),
        (None, 0),
        ({"csv": {"_target_": "pytorch_lightning.loggers.CSVLogger", "save_dir": "X"}, "log_texts": False}, 1),
    ],
)
def test_build_loggers_ignores_plain_settings(spec, count, tmp_path):
    if spec and "csv" in spec:
        spec["csv"]["save_dir"] = str(tmp_path)
    assert len(build_loggers(spec)) == count


def offline_files(save_dir: Path) -> Path:
    runs = list((save_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize(("texts", "has_text"), [(None, False), (TEXTS, True)])
def test_log_run_writes_an_offline_wandb_run_with_metrics_and_per_question_table(tmp_path, texts, has_text):
    from pytorch_lightning.loggers import CSVLogger

    logger = wandb_logger(project="bioqa-test", name="t", save_dir=tmp_path, mode="offline")
    csv = CSVLogger(tmp_path, name="csv")
    log_run([logger, csv], {"model": {"name": "m"}, "prompt": {"n_shots": 3}}, METRICS, ROWS, texts)
    header = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"yesno/macro_f1", "yesno/macro_f1_ci_low", "yesno/macro_f1_ci_high", "accounting/cost_usd"} <= set(header)
    run = offline_files(tmp_path)
    tables = list((run / "files" / "media" / "table").glob("per_question_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert len(table["data"]) == 2 and table["columns"][:2] == ["id", "type"]
    logged = b"".join(p.read_bytes() for p in run.rglob("*") if p.is_file())
    assert (b"SECRET-TEXT" in logged) is has_text  # no question text leaves the machine unless asked for


def test_sweep_dashboard_builds_offline_with_a_curve_per_measure():
    workspace = sweep_workspace("someone", "bioqa", group="infer-2026-12-01_10-00-00_1-ab")
    view = workspace._to_model()  # what save() would send; built without any network call
    payload = view.model_dump_json()
    curves = workspace.sections[0].panels
    assert len(curves) == len(headline_measures()) and all(panel.x.name == "prompt.n_shots" for panel in curves)
    assert "yesno/macro_f1" in payload and "infer-2026-12-01_10-00-00_1-ab" in payload
    assert '"grouping":[{"section":"config","name":"model.value.name"}]' in payload  # one curve per model
