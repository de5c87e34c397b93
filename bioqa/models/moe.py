"""NF4 mixture-of-experts: a routed forward over 4-bit fused expert weights, and LoRA adapters on the experts.

transformers 5.x stores the experts of a MoE layer (Mixtral, Qwen-MoE, ...) as fused 3-D parameters
``gate_up_proj`` [E, 2*ffn, hidden] and ``down_proj`` [E, hidden, ffn]. bioqa keeps them as
``bitsandbytes.nn.Params4bit`` (one NF4 tensor per parameter) and replaces the experts' forward by
:func:`nf4_experts_forward`, which

- touches only the experts that tokens are routed to, one expert at a time: its slice of the packed NF4 data
  and of the (double-quantised) absmax statistics is a view, handed to ``bitsandbytes.matmul_4bit``; so the
  transient bf16 copy is one expert's weight (not all E experts as with a parametrization that dequantises the
  whole tensor on access), and decoding (a few tokens per step) uses bitsandbytes' fused 4-bit GEMV/GEMM
  kernels instead of re-dequantising every expert at every step;
- keeps no dequantised weight for the backward pass (``MatMul4Bit`` re-dequantises the expert for the input
  gradient), so activation memory is independent of the number of experts;
- adds optional per-expert LoRA deltas (:class:`ExpertLoRA`), trained like any other parameter.

A second forward, :func:`nf4_experts_forward_grouped` (``experts_forward="grouped"``), dequantises each fused
expert tensor ONCE per pass (once in the forward, once in the backward) into a reusable bf16 buffer shared by all
layers, then runs one grouped GEMM (``torch.nn.functional.grouped_mm``) over the routed tokens: fewer, larger
kernels for training-sized batches, at the cost of one layer's bf16 experts in memory (Mixtral-8x7B: 2.6 GiB).
``"auto"`` uses the grouped forward for at least :data:`GROUPED_MIN_TOKENS` tokens and the routed one below
(decoding). Which is faster on a GPU is for ``benchmarks/qlora_throughput.py`` to say.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterator

import bitsandbytes as bnb
import bitsandbytes.functional as bnbf
import torch
from torch import nn

EXPERT_PARAMS = ("gate_up_proj", "down_proj")
LORA_ATTRIBUTE = "bioqa_lora"
MODE_ATTRIBUTE = "bioqa_experts_forward"
EXPERT_FORWARDS = ("routed", "grouped", "auto")
GROUPED_MIN_TOKENS = 64


def is_fused_experts(module: nn.Module) -> bool:
    """A transformers experts module this forward supports: fused, gated, concatenated [gate; up], no bias."""
    return (
        all(isinstance(getattr(module, name, None), nn.Parameter) for name in EXPERT_PARAMS)
        and len(logical_shape(module.gate_up_proj)) == 3
        and getattr(module, "has_gate", False)
        and getattr(module, "is_concatenated", False)
        and not getattr(module, "has_bias", True)
        and not getattr(module, "is_transposed", True)
    )


def logical_shape(param: torch.Tensor) -> torch.Size:
    """A parameter's shape before 4-bit packing."""
    if isinstance(param, bnb.nn.Params4bit) and param.quant_state is not None:
        return torch.Size(param.quant_state.shape)
    return param.shape


def iter_fused_experts(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, module in model.named_modules():
        if is_fused_experts(module):
            yield name, module


def expert_quant_states(param: bnb.nn.Params4bit) -> list[bnbf.QuantState]:
    """One 2-D ``QuantState`` per expert, viewing the expert's slice of the statistics.

    With double quantisation the 8-bit absmax is sliced directly when each expert holds a whole number of
    second-level blocks (true for real model shapes); otherwise the absmax is dequantised (1/64 of the weights).
    """
    state = param.quant_state
    num_experts, *matrix_shape = state.shape
    per_expert = math.prod(matrix_shape)
    if per_expert % state.blocksize:
        raise ValueError(
            f"expert weight {tuple(state.shape)}: {per_expert} values per expert is not a multiple of "
            f"the quantisation block size {state.blocksize}"
        )
    blocks = per_expert // state.blocksize
    common = dict(
        shape=torch.Size(matrix_shape),
        code=state.code,
        blocksize=state.blocksize,
        quant_type=state.quant_type,
        dtype=state.dtype,
    )
    if state.nested and blocks % state.state2.blocksize == 0:
        blocks2 = blocks // state.state2.blocksize
        return [
            bnbf.QuantState(
                absmax=state.absmax[e * blocks : (e + 1) * blocks],
                offset=state.offset,
                state2=bnbf.QuantState(
                    absmax=state.state2.absmax[e * blocks2 : (e + 1) * blocks2],
                    code=state.state2.code,
                    blocksize=state.state2.blocksize,
                    quant_type=state.state2.quant_type,
                    dtype=state.state2.dtype,
                ),
                **common,
            )
            for e in range(num_experts)
        ]
    absmax = bnbf.dequantize_blockwise(state.absmax, state.state2) + state.offset if state.nested else state.absmax
    return [bnbf.QuantState(absmax=absmax[e * blocks : (e + 1) * blocks], **common) for e in range(num_experts)]


def expert_packed(param: bnb.nn.Params4bit, expert: int) -> torch.Tensor:
    """The packed NF4 bytes of one expert (a view), in bitsandbytes' [n/2, 1] layout."""
    per_expert = math.prod(param.quant_state.shape[1:]) // 2
    return param.data.view(-1)[expert * per_expert : (expert + 1) * per_expert].view(-1, 1)


def dequantize_experts(param: bnb.nn.Params4bit) -> torch.Tensor:
    """The full 3-D weight in its original dtype (reference computations and merging)."""
    return bnbf.dequantize_4bit(param.data, param.quant_state)


class ExpertLoRA(nn.Module):
    """LoRA on every expert's gate/up and down projections: ``W_e x + (alpha/r) B_e A_e dropout(x)``.

    ``A`` is initialised like PEFT (Kaiming uniform), ``B`` at zero, so a fresh adapter leaves the model unchanged.
    """

    def __init__(
        self,
        num_experts: int,
        hidden: int,
        ffn: int,
        r: int,
        alpha: float,
        dropout: float = 0.0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        factory = dict(dtype=dtype, device=device)
        self.gate_up_A = nn.Parameter(torch.empty(num_experts, r, hidden, **factory))
        self.gate_up_B = nn.Parameter(torch.zeros(num_experts, 2 * ffn, r, **factory))
        self.down_A = nn.Parameter(torch.empty(num_experts, r, ffn, **factory))
        self.down_B = nn.Parameter(torch.zeros(num_experts, hidden, r, **factory))
        for weight in (self.gate_up_A, self.down_A):
            for e in range(num_experts):
                nn.init.kaiming_uniform_(weight[e], a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def delta(self, name: str, x: torch.Tensor, expert: int) -> torch.Tensor:
        a, b = getattr(self, f"{name}_A")[expert], getattr(self, f"{name}_B")[expert]
        return (self.dropout(x).to(a.dtype) @ a.t() @ b.t()).to(x.dtype) * self.scaling


def expert_linear(
    x: torch.Tensor, param: torch.Tensor, states: list[bnbf.QuantState] | None, expert: int
) -> torch.Tensor:
    """``x @ W[expert].T`` for a fused expert weight, 4-bit (``states`` given) or full precision."""
    if states is None:
        return nn.functional.linear(x.to(param.dtype), param[expert])
    state = states[expert]
    return bnb.matmul_4bit(x.to(state.dtype), expert_packed(param, expert).t(), quant_state=state)


def _states(param: torch.Tensor) -> list[bnbf.QuantState] | None:
    return expert_quant_states(param) if isinstance(param, bnb.nn.Params4bit) else None


_BUFFERS: dict[tuple[torch.Size, torch.dtype, torch.device], torch.Tensor] = {}


def dequantize_into_buffer(param: bnb.nn.Params4bit) -> torch.Tensor:
    """The full 3-D weight dequantised into a buffer reused by every layer of the same shape (valid until the
    next call for that shape: callers use it at once and keep no reference). bitsandbytes 0.50 has no CPU
    kernel writing into ``out``, so on CPU each call returns a fresh tensor."""
    state = param.quant_state
    if param.device.type == "cpu":
        return bnbf.dequantize_4bit(param.data, state)
    key = (torch.Size(state.shape), state.dtype, param.device)
    buffer = _BUFFERS.get(key)
    if buffer is None:
        buffer = _BUFFERS[key] = torch.empty(key[0], dtype=key[1], device=key[2])
    return bnbf.dequantize_4bit(param.data, state, out=buffer)


def release_expert_buffers() -> None:
    """Free the dequantisation buffers (they are re-created on the next grouped forward)."""
    _BUFFERS.clear()


def _grouped_mm_ok(*tensors: torch.Tensor) -> bool:
    """``grouped_mm`` needs 16-byte aligned data and strides (on CPU too), and bf16 on CUDA."""
    if not hasattr(nn.functional, "grouped_mm"):
        return False
    for t in tensors:
        if t.is_cuda and t.dtype != torch.bfloat16:
            return False
        strides = [s * t.element_size() for s, n in zip(t.stride(), t.shape, strict=True) if s != 1 and n > 1]
        if t.data_ptr() % 16 or any(s % 16 for s in strides):
            return False
    return True


def grouped_mm(x: torch.Tensor, weight: torch.Tensor, counts: list[int], offs: torch.Tensor) -> torch.Tensor:
    """``x[rows of group e] @ weight[e]`` for consecutive row groups (``weight`` [E, in, out], any strides): one
    ``grouped_mm`` kernel where it applies, else a loop over the non-empty groups."""
    weight = weight.to(x.dtype)
    if _grouped_mm_ok(x, weight):
        return nn.functional.grouped_mm(x, weight, offs=offs)
    outputs, start = [], 0
    for expert, count in enumerate(counts):
        outputs.append(x[start : start + count] @ weight[expert])
        start += count
    return torch.cat(outputs) if outputs else x.new_zeros(0, weight.shape[-1])


class NF4GroupedLinear(torch.autograd.Function):
    """``x @ W[e].T`` per row group over an NF4 fused expert weight, dequantised once per pass into the shared
    buffer; backward dequantises again (nothing dequantised is saved) and returns the input gradient only."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, param: torch.Tensor, counts: list[int], offs: torch.Tensor) -> torch.Tensor:
        ctx.param, ctx.counts = param, counts
        ctx.save_for_backward(offs)
        weight = dequantize_into_buffer(param)
        return grouped_mm(x.to(weight.dtype).contiguous(), weight.transpose(-2, -1), counts, offs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        (offs,) = ctx.saved_tensors
        weight = dequantize_into_buffer(ctx.param)
        return grouped_mm(grad.to(weight.dtype).contiguous(), weight, ctx.counts, offs), None, None, None


def grouped_expert_linear(x: torch.Tensor, param: torch.Tensor, counts: list[int], offs: torch.Tensor) -> torch.Tensor:
    """``x @ W[e].T`` per row group, ``param`` NF4 (:class:`NF4GroupedLinear`) or full precision (autograd)."""
    if isinstance(param, bnb.nn.Params4bit):
        return NF4GroupedLinear.apply(x, param, counts, offs)
    return grouped_mm(x.to(param.dtype).contiguous(), param.transpose(-2, -1), counts, offs)


def _grouped_lora(lora: ExpertLoRA, name: str, x: torch.Tensor, counts: list[int], offs: torch.Tensor) -> torch.Tensor:
    a, b = getattr(lora, f"{name}_A"), getattr(lora, f"{name}_B")
    low = grouped_mm(lora.dropout(x).to(a.dtype).contiguous(), a.transpose(-2, -1), counts, offs)
    return (grouped_mm(low, b.transpose(-2, -1), counts, offs) * lora.scaling).to(x.dtype)


def nf4_experts_forward_grouped(
    self: nn.Module, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
) -> torch.Tensor:
    """Experts as two grouped GEMMs over the routed tokens, each fused weight dequantised once per pass (same
    results as :func:`nf4_experts_forward`)."""
    num_tokens, hidden = hidden_states.shape
    top_k = top_k_index.shape[-1]
    flat = top_k_index.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts_t = torch.bincount(flat, minlength=self.num_experts)[: self.num_experts]
    counts = counts_t.tolist()
    kept = sum(counts)  # expert-parallel sentinels (index == num_experts) sort last and are dropped
    if not kept:
        return torch.zeros_like(hidden_states)
    offs = torch.cumsum(counts_t, 0).to(torch.int32)
    token_of = order[:kept] // top_k
    x = hidden_states[token_of]
    lora: ExpertLoRA | None = getattr(self, LORA_ATTRIBUTE, None)
    h = grouped_expert_linear(x, self.gate_up_proj, counts, offs)
    if lora is not None:
        h = h + _grouped_lora(lora, "gate_up", x, counts, offs)
    a = self._apply_gate(h)
    y = grouped_expert_linear(a, self.down_proj, counts, offs)
    if lora is not None:
        y = y + _grouped_lora(lora, "down", a, counts, offs)
    weighted = y * top_k_weights.reshape(-1)[order[:kept], None].to(y.dtype)
    out = torch.zeros(num_tokens, hidden, dtype=weighted.dtype, device=hidden_states.device)
    return out.index_add_(0, token_of, weighted).to(hidden_states.dtype)


def nf4_experts_forward_auto(
    self: nn.Module, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
) -> torch.Tensor:
    """Grouped for at least :data:`GROUPED_MIN_TOKENS` tokens (training, prefill), routed below (decoding)."""
    forward = nf4_experts_forward_grouped if hidden_states.shape[0] >= GROUPED_MIN_TOKENS else nf4_experts_forward
    return forward(self, hidden_states, top_k_index, top_k_weights)


def nf4_experts_forward(
    self: nn.Module, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
) -> torch.Tensor:
    """Routed experts, one expert at a time, over NF4 (or full-precision) fused weights, plus expert LoRA deltas
    when attached (drop-in for transformers' ``Experts.forward``)."""
    num_tokens, hidden = hidden_states.shape
    top_k = top_k_index.shape[-1]
    flat = top_k_index.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=self.num_experts).tolist()
    token_of = order // top_k
    routed = hidden_states[token_of]
    lora: ExpertLoRA | None = getattr(self, LORA_ATTRIBUTE, None)
    gate_up_states, down_states = _states(self.gate_up_proj), _states(self.down_proj)

    outputs, start = [], 0
    for expert, count in enumerate(counts[: self.num_experts]):
        if count == 0:
            continue
        x = routed[start : start + count]
        start += count
        h = expert_linear(x, self.gate_up_proj, gate_up_states, expert)
        if lora is not None:
            h = h + lora.delta("gate_up", x, expert)
        a = self._apply_gate(h)
        y = expert_linear(a, self.down_proj, down_states, expert)
        if lora is not None:
            y = y + lora.delta("down", a, expert)
        outputs.append(y)
    if not outputs:
        return torch.zeros_like(hidden_states)
    kept = order[:start]  # expert-parallel sentinels (index == num_experts) sort last and are dropped
    weighted = torch.cat(outputs) * top_k_weights.reshape(-1)[kept, None].to(outputs[0].dtype)
    out = torch.zeros(num_tokens, hidden, dtype=weighted.dtype, device=hidden_states.device)
    return out.index_add_(0, token_of[:start], weighted).to(hidden_states.dtype)


_FORWARDS = {"routed": nf4_experts_forward, "grouped": nf4_experts_forward_grouped, "auto": nf4_experts_forward_auto}


def use_nf4_experts_forward(module: nn.Module, mode: str | None = None) -> None:
    """Run this fused experts module through bioqa's forward: ``mode`` "routed" (:func:`nf4_experts_forward`),
    "grouped" (:func:`nf4_experts_forward_grouped`) or "auto"; None keeps the module's current mode (default
    routed)."""
    if not is_fused_experts(module):
        raise TypeError(f"{type(module).__name__} is not a fused gated experts module")
    mode = mode or getattr(module, MODE_ATTRIBUTE, "routed")
    if mode not in _FORWARDS:
        raise ValueError(f"experts_forward must be one of {EXPERT_FORWARDS}, got {mode!r}")
    setattr(module, MODE_ATTRIBUTE, mode)
    module.forward = types.MethodType(_FORWARDS[mode], module)


def set_experts_forward(model: nn.Module, mode: str) -> list[str]:
    """Use ``mode`` for every fused experts module of ``model``; returns their names."""
    names = []
    for name, module in iter_fused_experts(model):
        use_nf4_experts_forward(module, mode)
        names.append(name)
    return names


def add_expert_lora(model: nn.Module, r: int, alpha: float, dropout: float = 0.0) -> list[str]:
    """Attach a trainable :class:`ExpertLoRA` to every fused experts module (4-bit or not); returns their names."""
    names = []
    for name, module in list(iter_fused_experts(model)):
        num_experts, two_ffn, hidden = logical_shape(module.gate_up_proj)
        lora = ExpertLoRA(num_experts, hidden, two_ffn // 2, r, alpha, dropout, device=module.gate_up_proj.device)
        module.add_module(LORA_ATTRIBUTE, lora)
        use_nf4_experts_forward(module)
        names.append(name)
    return names


def expert_lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The expert adapters' tensors keyed by their module path (PEFT wrappers' prefixes removed)."""
    return {
        _strip_peft_prefix(name): tensor.detach().cpu().contiguous()
        for name, tensor in model.state_dict().items()
        if f".{LORA_ATTRIBUTE}." in name
    }


def load_expert_lora(model: nn.Module, tensors: dict[str, torch.Tensor], r: int, alpha: float) -> None:
    """Attach expert adapters and load ``tensors`` (from :func:`expert_lora_state_dict`) into them."""
    add_expert_lora(model, r=r, alpha=alpha)
    params = {_strip_peft_prefix(name): p for name, p in model.named_parameters() if f".{LORA_ATTRIBUTE}." in name}
    missing = sorted(set(params) - set(tensors))
    unexpected = sorted(set(tensors) - set(params))
    if missing or unexpected:
        raise ValueError(
            f"expert LoRA tensors do not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(tensors[name])
            param.requires_grad_(False)


def _strip_peft_prefix(name: str) -> str:
    for prefix in ("base_model.model.",):
        name = name.removeprefix(prefix)
    return name
