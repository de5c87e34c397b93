"""Activation checkpointing chosen by a memory budget: checkpoint only as many decoder layers as needed.

:func:`plan_checkpointing` estimates the peak training memory of a QLoRA step from the model's shape (NF4
weights, LoRA + AdamW state, per-layer activations, logits and loss, the experts' transient bf16 weights) and
returns the fewest decoder layers to checkpoint so that the estimate fits the budget. The checkpointed layers are
the FIRST k: backward reaches them last, after the activations of every later (not checkpointed) layer have been
freed, so the peak is the larger of the end of the forward pass and the recomputation of one checkpointed layer.

Sizes are GiB (2**30 bytes, as ``torch.cuda.max_memory_allocated() / 2**30``); ``budget_gb`` is in the same unit.
Every number here is an ESTIMATE from the formulas below (bf16 activations, SDPA/flash attention, no activation
offloading); the benchmark (``benchmarks/qlora_throughput.py``) records it next to the measured peak.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

GIB = 2**30
NF4_BYTES_PER_PARAM = 0.516  # 4 bits + block-64 absmax double-quantised to 8 bits (+ second-level statistics)
LORA_BYTES_PER_PARAM = 16  # fp32 weight + fp32 gradient + two fp32 AdamW moments
ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a (MoE or dense) decoder-only transformer; ``experts=0`` for a dense MLP."""

    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    vocab: int
    experts: int = 0
    top_k: int = 1
    head_dim: int | None = None

    @property
    def dim(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        """From a transformers config (Mixtral, Qwen-MoE, Llama, SmolLM2, ...)."""
        experts = getattr(config, "num_local_experts", None) or getattr(config, "num_experts", None) or 0
        ffn = getattr(config, "moe_intermediate_size", None) if experts else None
        return cls(
            layers=config.num_hidden_layers,
            hidden=config.hidden_size,
            ffn=ffn or config.intermediate_size,
            heads=config.num_attention_heads,
            kv_heads=getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
            vocab=config.vocab_size,
            experts=experts,
            top_k=getattr(config, "num_experts_per_tok", 1) if experts else 1,
            head_dim=getattr(config, "head_dim", None),
        )


@dataclass(frozen=True)
class CheckpointPlan:
    """Which decoder layers to checkpoint and the estimate (GiB per item) behind the choice."""

    layers: list[int]
    budget_gb: float
    peak_gb: float
    fits: bool
    items_gb: dict[str, float] = field(default_factory=dict)
    note: str = "estimate (bioqa.training.memory), not a measurement"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def attention_params(shape: ModelShape) -> int:
    q_out, kv_out = shape.heads * shape.dim, shape.kv_heads * shape.dim
    return shape.hidden * (2 * q_out + 2 * kv_out)


def mlp_params(shape: ModelShape) -> int:
    return max(shape.experts, 1) * 3 * shape.hidden * shape.ffn


def lora_params(shape: ModelShape, r: int, targets: tuple[str, ...] = ATTENTION_TARGETS) -> int:
    """LoRA parameters (A and B) on the attention projections of every layer."""
    q_out, kv_out = shape.heads * shape.dim, shape.kv_heads * shape.dim
    sizes = {
        "q_proj": (shape.hidden, q_out),
        "k_proj": (shape.hidden, kv_out),
        "v_proj": (shape.hidden, kv_out),
        "o_proj": (q_out, shape.hidden),
    }
    return shape.layers * sum(r * (sizes[t][0] + sizes[t][1]) for t in targets if t in sizes)


def layer_activation_bytes(shape: ModelShape, tokens: int, dtype_bytes: int = 2) -> int:
    """Activations one decoder layer keeps for backward when it is NOT checkpointed.

    Per token: attention block — residual input, RMSNorm input in fp32 (2 x), normed input (LoRA and 4-bit
    matmul inputs), q, rotated q, attention output (o_proj input), k, v, rotated k; MoE block — residual, fp32
    norm input, normed input, and per routed copy (top_k): the token, gate/up output (2 ffn), SiLU(gate) and up
    (2 ffn), the down-projection input (ffn) and output (hidden).
    """
    h, kv, f, k = shape.hidden, shape.kv_heads * shape.dim, shape.ffn, shape.top_k
    attention = 7 * h + 3 * kv
    mlp = 4 * h + k * (2 * h + 5 * f)
    return tokens * (attention + mlp) * dtype_bytes


def estimate_items(
    shape: ModelShape,
    seq: int,
    batch: int = 1,
    dtype_bytes: int = 2,
    lora_r: int = 16,
    experts_forward: str = "routed",
    overhead_gb: float = 1.0,
) -> dict[str, float]:
    """The fixed part of the peak (GiB per item) and the per-layer numbers the plan combines."""
    tokens = seq * batch
    layer_nf4 = (attention_params(shape) + mlp_params(shape)) * NF4_BYTES_PER_PARAM
    layer_full = (2 * shape.hidden + shape.hidden * shape.experts) * dtype_bytes  # norms, router
    embeddings = 2 * shape.vocab * shape.hidden * dtype_bytes  # embeddings + lm_head, not quantised
    expert_weight = 3 * shape.hidden * shape.ffn * dtype_bytes  # one expert (gate, up, down) in bf16
    transient = expert_weight * (max(shape.experts, 1) if experts_forward in ("grouped", "auto") else 1)
    return {
        "weights_nf4": shape.layers * (layer_nf4 + layer_full) / GIB,
        "embeddings_lm_head": embeddings / GIB,
        "lora_and_adamw": lora_params(shape, lora_r) * LORA_BYTES_PER_PARAM / GIB,
        "logits_and_loss": tokens * shape.vocab * (dtype_bytes + 4 + 4 + dtype_bytes) / GIB,
        "experts_transient_bf16": transient / GIB,
        "overhead": overhead_gb,
        "per_layer_activations": layer_activation_bytes(shape, tokens, dtype_bytes) / GIB,
        "per_layer_checkpoint": tokens * shape.hidden * dtype_bytes / GIB,
    }


def peak_gb(items: dict[str, float], layers: int, checkpointed: int) -> float:
    """Estimated peak with the first ``checkpointed`` of ``layers`` layers checkpointed."""
    fixed = sum(v for k, v in items.items() if not k.startswith("per_layer"))
    act, saved = items["per_layer_activations"], items["per_layer_checkpoint"]
    end_of_forward = fixed + (layers - checkpointed) * act + checkpointed * saved
    recompute = fixed + checkpointed * saved + act if checkpointed else 0.0
    return max(end_of_forward, recompute)


def plan_checkpointing(
    shape: ModelShape,
    seq: int,
    budget_gb: float,
    batch: int = 1,
    dtype_bytes: int = 2,
    lora_r: int = 16,
    experts_forward: str = "routed",
    overhead_gb: float = 1.0,
) -> CheckpointPlan:
    """The fewest first layers to checkpoint so that the estimated peak fits ``budget_gb`` (none if it fits
    already; all, with ``fits=False``, if even that does not)."""
    if not budget_gb > 0 or not math.isfinite(budget_gb):
        raise ValueError(f"memory_budget_gb must be a positive number, got {budget_gb!r}")
    if seq < 1 or batch < 1:
        raise ValueError(f"seq and batch must be positive, got seq={seq}, batch={batch}")
    items = estimate_items(shape, seq, batch, dtype_bytes, lora_r, experts_forward, overhead_gb)
    for k in range(shape.layers + 1):
        peak = peak_gb(items, shape.layers, k)
        if peak <= budget_gb:
            return CheckpointPlan(list(range(k)), budget_gb, round(peak, 3), True, _rounded(items))
    return CheckpointPlan(list(range(shape.layers)), budget_gb, round(peak, 3), False, _rounded(items))


def _rounded(items: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in items.items()}


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a (PEFT-wrapped) transformers causal LM."""
    for module in model.modules():
        layers = getattr(module, "layers", None)
        if isinstance(layers, nn.ModuleList) and len(layers) and hasattr(layers[0], "gradient_checkpointing"):
            return layers
    raise TypeError(f"{type(model).__name__}: no decoder layers that support gradient checkpointing")


def apply_checkpointing(model: nn.Module, layers: list[int]) -> list[int]:
    """Checkpoint exactly the decoder layers ``layers`` (non-reentrant); returns them."""
    blocks = decoder_layers(model)
    wrong = [i for i in layers if not 0 <= i < len(blocks)]
    if wrong:
        raise ValueError(f"no decoder layer {wrong[0]} (the model has {len(blocks)})")
    if not layers:
        model.activation_checkpointing_disable()
        return []
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    for i, block in enumerate(blocks):
        block.gradient_checkpointing = i in layers
    return list(layers)
