"""``trainer=ddp`` runs: Lightning DDP on CPU (gloo, 2 processes) over a tiny NF4 Mixtral with LoRA on attention and
experts takes the same step as one process on the same global batch (tests/ddp_qlora_step.py does the training; the
one-process step runs in this process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ddp_qlora_step
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
STEP = ROOT / "tests" / "ddp_qlora_step.py"


def run_ddp_step(out_dir: Path, devices: int) -> None:
    """``ddp_qlora_step.py`` in a subprocess: Lightning starts the other ranks from it."""
    out_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("MASTER_PORT", None)
    done = subprocess.run(
        [sys.executable, str(STEP), str(out_dir), str(devices)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_process_on_the_global_batch(tmp_path):
    run_ddp_step(tmp_path / "ddp", devices=2)
    (tmp_path / "single").mkdir()
    threads = torch.get_num_threads()
    try:
        ddp_qlora_step.main(tmp_path / "single", devices=1)
    finally:
        torch.set_num_threads(threads)
    rank0, rank1 = (torch.load(tmp_path / "ddp" / f"rank{r}.pt") for r in (0, 1))
    single = torch.load(tmp_path / "single" / "rank0.pt")
    assert (rank0["world_size"], rank0["strategy"], rank0["backend"]) == (2, "DDPStrategy", "gloo")
    assert rank0["trainer_strategy_config"] == "ddp_find_unused_parameters_true"  # what conf/trainer/ddp.yaml says
    assert single["world_size"] == 1
    # each rank saw a different half of the batch; their mean loss is the loss of the whole batch (equal token counts)
    assert rank0["loss"] != rank1["loss"]
    assert (rank0["loss"] + rank1["loss"]) / 2 == pytest.approx(single["loss"], rel=1e-6)
    # the all-reduced gradients are the single-process gradients of the global batch
    assert rank0["grads"].keys() == single["grads"].keys() and len(single["grads"]) == 2 * (8 + 4)
    for name, grad in single["grads"].items():
        assert torch.equal(rank0["grads"][name], rank1["grads"][name]), name
        torch.testing.assert_close(rank0["grads"][name], grad, atol=1e-6, rtol=1e-4, msg=name)
        assert grad.abs().sum() > 0, name
    # both ranks hold identical adapters after the step, the single-process ones up to float rounding
    for name, weight in single["adapters"].items():
        assert torch.equal(rank0["adapters"][name], rank1["adapters"][name]), name
        torch.testing.assert_close(rank0["adapters"][name], weight, atol=1e-4, rtol=1e-4, msg=name)
