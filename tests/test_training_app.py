"""``train_from_config`` (what ``python train.py`` runs), in-process on the real composed config: a tiny random
Mixtral trained for one step on the embedded demo batch writes its adapter, metrics and provenance."""

from __future__ import annotations

import json

import pytest
from helpers import compose_config
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from bioqa.resources import demo_golden_path
from bioqa.rundir import TRAINING_INFO as TRAINING_INFO_FILE
from bioqa.rundir import read_metrics
from bioqa.training.app import train_from_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_train_from_config_writes_adapter_metrics_and_provenance(tmp_path):
    run_dir = tmp_path / "run"
    overrides = [
        "model=tiny-mixtral",
        "prompt=1shot",
        "logger=csv",
        "trainer.max_steps=1",
        "+trainer.enable_progress_bar=false",
        f"paths.log_dir={tmp_path}",
        f"hydra.runtime.output_dir={run_dir}",
    ]
    cfg = compose_config("train", overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as @hydra.main passes it
    result = train_from_config(cfg, run_dir)
    info = json.loads((result.adapter_dir / TRAINING_INFO_FILE).read_text())
    assert info["global_step"] == 1 and info["model"] == "tiny-mixtral-random"
    assert info["data"]["train_files"] == [str(demo_golden_path())] and info["data"]["batch_size"] == 1
    assert info["prompt"]["n_shots"] == 1 and info["prompt"]["pool"] == "demo"
    assert info["data"]["n_train"] + info["data"]["n_val"] == 28  # 16 ideal + 12 exact answers of the demo batch
    assert "train/loss" in read_metrics(run_dir).flat()
    assert set(json.loads((run_dir / "provenance.json").read_text())["data"]) == {str(demo_golden_path())}
    assert list((run_dir / "csv").glob("version_*/metrics.csv"))
