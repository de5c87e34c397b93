"""``train(...)``: QLoRA fine-tuning with a Lightning Trainer, from plain values (train.py is a thin Hydra shell)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, RichProgressBar
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bioqa.errors import ConfigError
from bioqa.models.adapters import LoraSettings, add_lora, save_adapter
from bioqa.models.nf4_experts import MODE_ATTRIBUTE, iter_fused_experts
from bioqa.rundir import ADAPTER_DIR, CHECKPOINTS_DIR, RunMetrics, write_metrics
from bioqa.runs import provenance
from bioqa.training.data import ChatDataModule
from bioqa.training.kernels import apply_liger, compile_decoder_layers
from bioqa.training.memory import CheckpointPlan, ModelShape, plan_checkpointing
from bioqa.training.module import QLoRAModule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSettings:
    """Where the examples come from (see :class:`bioqa.training.data.ChatDataModule`)."""

    train_files: Sequence[str]
    val_files: Sequence[str] = ()
    format: str = "golden"
    kinds: Sequence[str] = ("exact", "ideal")
    val_fraction: float = 0.0
    max_length: int = 2048
    answer_tokens: int = 256
    batch_size: int = 1
    bucket_by_length: bool = True
    num_workers: int = 0
    packing: bool = False  # several examples per row, attention kept within each (position_ids restart)
    pack_length: int | None = None  # tokens per packed row (default max_length)


@dataclass(frozen=True)
class OptimSettings:
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_ratio: float = 0.03
    schedule: str = "cosine"


@dataclass
class TrainResult:
    adapter_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    best_checkpoint: str | None = None


def find_last_checkpoint(runs_root: str | os.PathLike) -> Path:
    """The newest ``checkpoints/last.ckpt`` below ``runs_root`` (what ``ckpt_path=last`` resumes)."""
    candidates = sorted(Path(runs_root).glob("**/checkpoints/last*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(f"ckpt_path=last: no checkpoints/last.ckpt below {runs_root}")
    return candidates[-1]


def prompt_builder(prompt: Any, tokenizer: PreTrainedTokenizerBase, max_length: int, answer_tokens: int) -> Any:
    """A :class:`bioqa.prompts.PromptBuilder` fitting prompts (shots, then snippets) into ``max_length``."""
    from bioqa.prompts import PromptBuilder

    def count_tokens(messages: Sequence[dict[str, str]]) -> int:
        text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return PromptBuilder(prompt, count_tokens=count_tokens, context_window=max_length, max_new_tokens=answer_tokens)


def checkpoint_plan(
    model: PreTrainedModel, data: DataSettings, lora: LoraSettings, budget_gb: float | None
) -> CheckpointPlan:
    """``gradient_checkpointing=auto``: the planner's choice for this model, row length, batch and budget."""
    if budget_gb is None:
        raise ConfigError("gradient_checkpointing=auto needs memory_budget_gb (the GPU memory to plan for, in GB)")
    experts = next((m for _, m in iter_fused_experts(model)), None)
    plan = plan_checkpointing(
        ModelShape.from_config(model.config),
        seq=data.pack_length or data.max_length,
        budget_gb=float(budget_gb),
        batch=data.batch_size,
        dtype_bytes=getattr(model, "dtype", torch.bfloat16).itemsize,
        lora_r=lora.r,
        experts_forward=getattr(experts, MODE_ATTRIBUTE, "routed"),
    )
    if not plan.fits:
        log.warning(
            "even with every layer checkpointed the estimated peak is %.1f GB, above memory_budget_gb=%s",
            plan.peak_gb,
            budget_gb,
        )
    log.info(
        "gradient checkpointing (auto, estimate): %d of %d layers, peak ≈ %.1f GB of %s GB",
        len(plan.layers),
        model.config.num_hidden_layers,
        plan.peak_gb,
        budget_gb,
    )
    return plan


def lightning_trainer(**kwargs: Any) -> pl.Trainer:
    """``pl.Trainer(**kwargs)``; a value Lightning refuses (``trainer.max_steps=-5``, an unknown accelerator) is a
    :class:`~bioqa.errors.ConfigError` naming it, not a traceback."""
    try:
        return pl.Trainer(**kwargs)
    except (ValueError, MisconfigurationException) as err:
        raise ConfigError(f"trainer: {str(err).strip().splitlines()[0]}") from err


def train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    data: DataSettings,
    lora: LoraSettings | None = None,
    optim: OptimSettings | None = None,
    output_dir: str | os.PathLike,
    prompt: Any = None,
    trainer_kwargs: dict[str, Any] | None = None,
    loggers: Sequence[Any] = (),
    gradient_checkpointing: bool | str = False,
    memory_budget_gb: float | None = None,
    liger: bool = False,
    compile_layers: bool = False,
    early_stopping_patience: int | None = 3,
    ckpt_path: str | None = None,
    resume_root: str | os.PathLike | None = None,
    seed: int = 0,
    info: dict[str, Any] | None = None,
) -> TrainResult:
    """Fine-tune LoRA adapters on a (4-bit) ``model``; writes ``output_dir/adapter`` and ``output_dir/checkpoints``.

    ``prompt``: a :class:`bioqa.prompts.PromptConfig` (needed for golden-file data). ``ckpt_path``: a Lightning
    checkpoint to resume, or ``"last"`` for the newest ``last.ckpt`` under ``resume_root``.
    ``gradient_checkpointing``: True, False or ``"auto"`` (the fewest layers that fit ``memory_budget_gb``, by
    :func:`bioqa.training.memory.plan_checkpointing`); ``liger``: Liger-Kernel on CUDA (skipped with a warning
    elsewhere); ``compile_layers``: ``torch.compile`` every decoder layer. What ran is recorded under ``speed`` in
    the adapter's training info.
    """
    if isinstance(gradient_checkpointing, str) and gradient_checkpointing != "auto":
        raise ConfigError(f"gradient_checkpointing must be true, false or auto, got {gradient_checkpointing!r}")
    if memory_budget_gb is not None and gradient_checkpointing != "auto":
        log.warning("memory_budget_gb is only used with gradient_checkpointing=auto; ignored")
    lora, optim = lora or LoraSettings(), optim or OptimSettings()
    pl.seed_everything(seed, workers=True)
    output_dir = Path(output_dir)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    builder = prompt_builder(prompt, tokenizer, data.max_length, data.answer_tokens) if prompt is not None else None
    datamodule = ChatDataModule(
        tokenizer,
        train_files=data.train_files,
        val_files=data.val_files,
        data_format=data.format,
        builder=builder,
        kinds=data.kinds,
        val_fraction=data.val_fraction,
        max_length=data.max_length,
        batch_size=data.batch_size,
        bucket_by_length=data.bucket_by_length,
        num_workers=data.num_workers,
        seed=seed,
        packing=data.packing,
        pack_length=data.pack_length,
    )
    datamodule.setup("fit")
    has_val = datamodule.val_set is not None

    speed: dict[str, Any] = {"packing": data.packing, "gradient_checkpointing": gradient_checkpointing}
    checkpointing: bool | list[int] = gradient_checkpointing
    if gradient_checkpointing == "auto":
        plan = checkpoint_plan(model, data, lora, memory_budget_gb)
        checkpointing, speed["checkpoint_plan"] = plan.layers, plan.to_json()
    if liger:
        speed["liger"] = apply_liger(model)
    peft_model = add_lora(model, lora)
    if compile_layers:
        speed["compiled_layers"] = compile_decoder_layers(peft_model)
    module = QLoRAModule(peft_model, gradient_checkpointing=checkpointing, **asdict(optim))
    n_trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    log.info("trainable (LoRA) parameters: %d", n_trainable)

    monitor = "val/loss" if has_val else None
    checkpoint = ModelCheckpoint(
        dirpath=output_dir / CHECKPOINTS_DIR,
        monitor=monitor,
        save_last=True,
        save_top_k=1,
        filename="step{step}" if monitor is None else "step{step}-val_loss{val/loss:.4f}",
        auto_insert_metric_name=False,
    )
    trainer_kwargs = dict(trainer_kwargs or {})
    callbacks: list[pl.Callback] = [checkpoint]
    if trainer_kwargs.get("enable_progress_bar", True):
        callbacks.append(RichProgressBar())
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if has_val and early_stopping_patience:
        callbacks.append(EarlyStopping(monitor="val/loss", patience=early_stopping_patience, mode="min", strict=False))
    if not has_val:
        trainer_kwargs["limit_val_batches"] = 0
    trainer = lightning_trainer(
        **trainer_kwargs,
        callbacks=callbacks,
        logger=list(loggers) if loggers else False,
        default_root_dir=str(output_dir),
        enable_model_summary=False,
    )
    if ckpt_path == "last":
        ckpt_path = str(find_last_checkpoint(resume_root or output_dir.parent))
        log.info("resuming from %s", ckpt_path)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    best = checkpoint.best_model_path or None
    if best and monitor is not None:
        state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state, strict=False)
        log.info("restored the best adapter (%s)", best)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}

    adapter_dir = output_dir / ADAPTER_DIR
    if trainer.is_global_zero:
        payload = {
            **(info or {}),
            "lora": lora.to_json(),
            "optim": asdict(optim),
            "data": {
                **asdict(data),
                "n_train": len(datamodule.train_set),
                "n_val": len(datamodule.val_set) if has_val else 0,
            },
            "prompt": _prompt_json(prompt),
            "trainable_parameters": n_trainable,
            "speed": speed,
            "metrics": metrics,
            "best_checkpoint": best,
            "global_step": trainer.global_step,
            "provenance": provenance([*data.train_files, *data.val_files]),
        }
        save_adapter(peft_model, adapter_dir, tokenizer, payload)
        write_metrics(output_dir, RunMetrics(training=metrics))
        log.info("adapter written to %s", adapter_dir)
    return TrainResult(adapter_dir=adapter_dir, metrics=metrics, best_checkpoint=best)


def _prompt_json(prompt: Any) -> dict[str, Any] | None:
    if prompt is None:
        return None
    values = asdict(prompt)
    values["templates"] = {
        kind: {qtype: asdict(t) for qtype, t in per.items()} for kind, per in prompt.templates.items()
    }
    return values
