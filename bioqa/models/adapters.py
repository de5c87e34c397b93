"""LoRA adapters: attach (PEFT on linear layers, bioqa's own on NF4 experts), save as a PEFT dir, load back."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bioqa.models.lora_experts import add_expert_lora, expert_lora_state_dict, load_expert_lora
from bioqa.rundir import TRAINING_INFO

EXPERT_LORA_FILE = "expert_lora.safetensors"


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyper-parameters. ``target_modules``: linear layers by name (PEFT); ``experts``: also adapt the
    fused NF4 experts (``bioqa.models.lora_experts.ExpertLoRA``; saved beside the PEFT adapter, loaded by
    :func:`load_adapter`)."""

    r: int = 16
    alpha: float = 32
    dropout: float = 0.05
    target_modules: Sequence[str] = field(default=("q_proj", "k_proj", "v_proj", "o_proj"))
    experts: bool = False
    expert_r: int | None = None
    expert_alpha: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "target_modules": list(self.target_modules)}


def add_lora(model: PreTrainedModel, settings: LoraSettings) -> PeftModel:
    """Wrap ``model`` with PEFT LoRA (only adapters trainable) and, if asked, expert adapters."""
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    if settings.experts:
        names = add_expert_lora(
            peft_model,
            r=settings.expert_r or settings.r,
            alpha=settings.expert_alpha or settings.alpha,
            dropout=settings.dropout,
        )
        if not names:
            raise ValueError("lora.experts=true but the model has no 4-bit fused experts")
    return peft_model


def save_adapter(
    model: PeftModel,
    out_dir: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase | None = None,
    info: dict[str, Any] | None = None,
) -> Path:
    """A PEFT adapter dir (``adapter_config.json`` + weights) plus the tokenizer with its chat template, the
    expert adapters (if any) and ``bioqa_training.json`` (training config, hyper-parameters, prompt style)."""
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    experts = expert_lora_state_dict(model)
    if experts:
        lora = next(m for m in model.modules() if hasattr(m, "gate_up_A"))
        save_file(experts, out_dir / EXPERT_LORA_FILE, metadata={"r": str(lora.r), "alpha": str(lora.alpha)})
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    (out_dir / TRAINING_INFO).write_text(json.dumps(info or {}, indent=2, default=str), encoding="utf-8")
    return out_dir


def load_adapter(model: PreTrainedModel, adapter_dir: str | os.PathLike, is_trainable: bool = False) -> PeftModel:
    """Load what :func:`save_adapter` wrote onto a (4-bit or full-precision) base model.

    Plain ``PeftModel.from_pretrained`` loads the linear-layer adapters only; this also restores expert adapters.
    """
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter_dir} has no adapter_config.json (not a PEFT adapter dir)")
    peft_model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=is_trainable)
    expert_file = adapter_dir / EXPERT_LORA_FILE
    if expert_file.is_file():
        from safetensors import safe_open

        with safe_open(str(expert_file), "pt") as handle:
            meta = handle.metadata()
        load_expert_lora(peft_model, load_file(str(expert_file)), r=int(meta["r"]), alpha=float(meta["alpha"]))
    return peft_model


def merge_and_save(model: PeftModel, out_dir: str | os.PathLike, tokenizer: PreTrainedTokenizerBase) -> Path:
    """Merge the linear-layer adapters into a full-precision copy of the base and save it.

    The base must not be 4-bit (merging into NF4 would re-quantise and lose the adapter's precision): load the
    base in bf16 (possibly on CPU), :func:`load_adapter`, then merge. Expert adapters are not merged.
    """
    if any(_is_4bit(m) for m in model.modules()):
        raise ValueError("merge_and_save needs a full-precision base model; load it without 4-bit, then the adapter")
    if any(hasattr(m, "gate_up_A") for m in model.modules()):
        raise ValueError("expert adapters cannot be merged by PEFT; keep the adapter dir instead")
    merged = model.merge_and_unload()
    out_dir = Path(out_dir)
    merged.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _is_4bit(module: nn.Module) -> bool:
    import bitsandbytes as bnb

    return isinstance(module, bnb.nn.Linear4bit)
