"""The LightningModule: a 4-bit causal LM whose only trainable weights are LoRA adapters."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from bioqa.training.memory import apply_checkpointing

SCHEDULES = ("cosine", "linear", "constant")


def warmup_schedule(step: int, warmup_steps: int, total_steps: int, schedule: str = "cosine") -> float:
    """Learning-rate factor: linear warm-up to 1, then cosine or linear decay to 0 (or constant)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress


class QLoRAModule(pl.LightningModule):
    """Causal-LM loss on completion-only labels; AdamW over the trainable (LoRA) parameters only.

    Checkpoints hold the trainable parameters only (the frozen 4-bit base is rebuilt from the model files).
    ``gradient_checkpointing``: True (every decoder layer), False, or the indices of the layers to checkpoint
    (:func:`bioqa.training.memory.plan_checkpointing`). Training runs without a KV cache, so packed batches
    (``position_ids`` restarting per example, no ``attention_mask``) keep attention within each example.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_ratio: float = 0.03,
        schedule: str = "cosine",
        gradient_checkpointing: bool | Sequence[int] = False,
    ):
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.model = model.train()  # from_pretrained returns eval mode; LoRA dropout must be active in training
        if not isinstance(gradient_checkpointing, bool):
            gradient_checkpointing = [int(i) for i in gradient_checkpointing]
        self.save_hyperparameters(ignore=["model"])
        self.strict_loading = False  # checkpoints carry the adapters only
        if gradient_checkpointing is True:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        elif gradient_checkpointing:
            apply_checkpointing(model, gradient_checkpointing)
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError("the model has no trainable parameters (add LoRA adapters first)")

    def trainable_names(self) -> list[str]:
        return [name for name, p in self.named_parameters() if p.requires_grad]

    def forward(self, **batch: torch.Tensor) -> Any:
        return self.model(**batch)

    def _loss(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        loss = self.model(**batch, use_cache=False).loss
        tokens = int((batch["labels"] != -100).sum())
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0], sync_dist=stage == "val")
        if stage == "train":
            self.log("train/answer_tokens", float(tokens), reduce_fx="sum", batch_size=1)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._loss(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._loss(batch, "val")

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay, betas=tuple(self.hparams.betas)
        )
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer is not None else 1
        warmup = int(self.hparams.warmup_ratio * total)
        scheduler = LambdaLR(optimizer, lambda step: warmup_schedule(step, warmup, total, self.hparams.schedule))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainable = {f"model.{name}" for name, p in self.model.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        expected = {f"model.{name}" for name, p in self.model.named_parameters() if p.requires_grad}
        missing = sorted(expected - set(checkpoint["state_dict"]))
        if missing:
            raise ValueError(
                f"checkpoint lacks adapter weights {missing[:3]} (was it trained with other LoRA settings?)"
            )
