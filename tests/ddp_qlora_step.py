"""One QLoRA optimizer step of ``model=tiny-mixtral`` (NF4 + LoRA on attention and experts) with the composed
``trainer=ddp`` settings on CPU (gloo), or on one process; run by tests/test_training_ddp.py (the one-process step
in the test's own process).

    python tests/ddp_qlora_step.py OUT_DIR DEVICES

Every rank writes ``OUT_DIR/rank{r}.pt``: its local loss, the gradients it stepped with (after DDP's all-reduce) and
the adapter weights after the step. The global batch is 4 sequences of 32 tokens (2 per rank with 2 processes).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from helpers import compose_config
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from bioqa.models.adapters import LoraSettings, add_lora
from bioqa.training.module import QLoRAModule

GLOBAL_BATCH, SEQ = 4, 32


class Tokens(torch.utils.data.Dataset):
    def __init__(self, vocab: int):
        self.ids = torch.randint(0, vocab, (GLOBAL_BATCH, SEQ), generator=torch.Generator().manual_seed(7))

    def __len__(self) -> int:
        return GLOBAL_BATCH

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(SEQ, dtype=torch.long), "labels": self.ids[i]}


class Record(pl.Callback):
    """Keeps the local loss and the (all-reduced) gradients of the step."""

    def __init__(self):
        self.loss, self.grads = None, {}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.loss = float(outputs["loss"])

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.grads = {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}


def main(out_dir: Path, devices: int) -> None:
    torch.set_num_threads(1)
    cfg = compose_config("train", ["model=tiny-mixtral", "trainer=ddp"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    pl.seed_everything(0)
    model = hydra.utils.instantiate(cfg.model.train.base)
    lora = LoraSettings(**{**OmegaConf.to_container(cfg.model.train.lora, resolve=True), "dropout": 0.0})
    module = QLoRAModule(add_lora(model, lora), lr=1e-2, warmup_ratio=0.0, schedule="constant")
    with torch.no_grad():  # B starts at zero; make every adapter matter in the first step
        generator = torch.Generator().manual_seed(1)
        for name, param in module.named_parameters():
            if param.requires_grad and ("lora_B" in name or name.endswith("_B")):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)

    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_kwargs.update(accelerator="cpu", precision="32-true", max_steps=1, accumulate_grad_batches=1)
    trainer_kwargs.update(num_sanity_val_steps=0, limit_val_batches=0, enable_progress_bar=False)
    if devices == 1:
        trainer_kwargs.update(devices=1, strategy="auto")
    else:
        trainer_kwargs.update(devices=devices)
    record = Record()
    trainer = pl.Trainer(
        **trainer_kwargs, callbacks=[record], logger=False, enable_checkpointing=False, enable_model_summary=False
    )
    data = torch.utils.data.DataLoader(Tokens(model.config.vocab_size), batch_size=GLOBAL_BATCH // devices)
    trainer.fit(module, train_dataloaders=data)
    adapters = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    strategy = type(trainer.strategy).__name__
    backend = getattr(trainer.strategy, "_process_group_backend", None)
    torch.save(
        {
            "loss": record.loss,
            "grads": record.grads,
            "adapters": adapters,
            "world_size": trainer.world_size,
            "strategy": strategy,
            "backend": backend,
            "trainer_strategy_config": cfg.trainer.strategy,
        },
        out_dir / f"rank{trainer.global_rank}.pt",
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
