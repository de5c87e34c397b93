"""Fused kernels for training: Liger-Kernel (CUDA/Triton only) and ``torch.compile`` of the decoder layers.

- :func:`apply_liger` patches the model instance with Liger's RMSNorm, RoPE and fused linear cross-entropy (the
  logits are never materialised), and SwiGLU for dense MLPs. MoE experts keep bioqa's NF4 forward (Liger's
  ``LigerExperts`` would replace it with a bf16 one). Liger's kernels are Triton/CUDA: on another device nothing
  is patched, a warning says so and the returned record says what ran.
- :func:`compile_decoder_layers` compiles every decoder layer in place (``nn.Module.compile``). With NF4 weights
  it compiles on CPU (bitsandbytes' ops are traced as custom ops); MoE layers break the graph at the routing
  (``bincount``/``tolist``: data-dependent shapes), so attention and norms are compiled, the experts run eagerly.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import torch
from torch import nn

from bioqa.errors import ConfigError
from bioqa.models.nf4_experts import iter_fused_experts
from bioqa.training.memory import decoder_layers

log = logging.getLogger(__name__)

LIGER_KERNELS = ("rope", "rms_norm", "fused_linear_cross_entropy", "swiglu")


def liger_kwargs(model: nn.Module, device_type: str) -> tuple[dict[str, bool] | None, str]:
    """What to apply (Liger's keyword arguments, or None) and why: the decision of :func:`apply_liger`."""
    if device_type != "cuda":
        return None, f"skipped: Liger-Kernel is Triton/CUDA-only and the model is on {device_type}"
    moe = any(True for _ in iter_fused_experts(model))
    kwargs = {
        "rope": True,
        "rms_norm": True,
        "fused_linear_cross_entropy": True,
        "cross_entropy": False,
        "swiglu": not moe,
    }
    applied = [k for k in LIGER_KERNELS if kwargs[k]]
    reason = "applied: " + ", ".join(applied) + (" (experts keep bioqa's NF4 forward)" if moe else "")
    return kwargs, reason


def apply_liger(model: nn.Module) -> str:
    """Patch ``model`` (a transformers causal LM, before LoRA) with Liger's kernels where they can run; returns
    the record of what was done (``"applied: ..."`` or ``"skipped: ..."``)."""
    device_type = next(model.parameters()).device.type
    kwargs, record = liger_kwargs(model, device_type)
    if kwargs is None:
        log.warning("liger=true %s; training runs without it", record.removeprefix("skipped: "))
        return record
    try:
        from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN
    except ImportError as error:
        raise ConfigError(f"liger=true needs the liger-kernel package ({error})") from None
    model_type = model.config.model_type
    if model_type not in MODEL_TYPE_TO_APPLY_LIGER_FN:
        raise ConfigError(f"liger=true: Liger-Kernel has no kernels for model type {model_type!r}")
    apply = MODEL_TYPE_TO_APPLY_LIGER_FN[model_type]
    accepted = inspect.signature(apply).parameters
    apply(model=model, **{k: v for k, v in kwargs.items() if k in accepted})
    log.info("Liger-Kernel %s", record)
    return record


def compile_decoder_layers(model: nn.Module, **compile_kwargs: Any) -> int:
    """``torch.compile`` every decoder layer in place (compiled on first call); returns how many."""
    layers = decoder_layers(model)
    for layer in layers:
        layer.compile(**compile_kwargs)
    log.info("torch.compile: %d decoder layers (torch %s)", len(layers), torch.__version__)
    return len(layers)
