"""NF4 mixture-of-experts kernels: routed and grouped forwards over 4-bit fused expert weights.

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
- adds the deltas of an expert adapter when one is attached (:class:`ExpertDelta`; bioqa's is
  :class:`bioqa.models.lora_experts.ExpertLoRA`).

A second forward, :func:`nf4_experts_forward_grouped` (``experts_forward="grouped"``), dequantises each fused
expert tensor ONCE per pass (once in the forward, once in the backward) into a reusable bf16 buffer shared by all
layers of a model (:class:`DequantBuffers`, owned by the model's experts modules and freed with them), then runs
one grouped GEMM (``torch.nn.functional.grouped_mm``) over the routed tokens: fewer, larger kernels for
training-sized batches, at the cost of one layer's bf16 experts in memory (Mixtral-8x7B: 2.6 GiB). ``"auto"`` uses
the grouped forward for at least :data:`GROUPED_MIN_TOKENS` tokens and the routed one below (decoding). Which is
faster on a GPU is for ``benchmarks/qlora_throughput.py`` to say.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterator
from typing import Protocol

import bitsandbytes as bnb
import bitsandbytes.functional as bnbf
import torch
from torch import nn

EXPERT_PARAMS = ("gate_up_proj", "down_proj")
#: The attribute of an experts module holding its adapter (an :class:`ExpertDelta`), if any.
LORA_ATTRIBUTE = "bioqa_lora"
MODE_ATTRIBUTE = "bioqa_experts_forward"
BUFFERS_ATTRIBUTE = "bioqa_dequant_buffers"
GROUPED_MIN_TOKENS = 64


class ExpertDelta(Protocol):
    """An adapter on the experts: what it adds to ``x @ W[e].T`` for projection ``name`` ("gate_up", "down")."""

    def delta(self, name: str, x: torch.Tensor, expert: int) -> torch.Tensor:
        """For the rows ``x`` of one ``expert``."""
        ...

    def grouped_delta(self, name: str, x: torch.Tensor, counts: list[int], offs: torch.Tensor) -> torch.Tensor:
        """For consecutive row groups, ``counts[e]`` rows of expert ``e`` (``offs``: their cumulative ends)."""
        ...


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


class DequantBuffers:
    """The bf16 buffers the grouped forward dequantises fused expert weights into: one per (shape, dtype, device),
    reused by every layer of one model (:func:`set_experts_forward` gives all its experts modules the same owner).
    A buffer is valid until the next dequantisation of that shape: callers use it at once and keep no reference."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[torch.Size, torch.dtype, torch.device], torch.Tensor] = {}

    def dequantize(self, param: bnb.nn.Params4bit) -> torch.Tensor:
        """The full 3-D weight, in the buffer of its shape (bitsandbytes 0.50 has no CPU kernel writing into
        ``out``: on CPU a fresh tensor)."""
        state = param.quant_state
        if param.device.type == "cpu":
            return bnbf.dequantize_4bit(param.data, state)
        key = (torch.Size(state.shape), state.dtype, param.device)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = torch.empty(key[0], dtype=key[1], device=key[2])
        return bnbf.dequantize_4bit(param.data, state, out=buffer)

    def release(self) -> None:
        """Free the buffers (they are re-created on the next grouped forward)."""
        self._buffers.clear()

    @property
    def shapes(self) -> list[torch.Size]:
        """The shapes it holds a buffer for."""
        return [key[0] for key in self._buffers]


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
    """``x @ W[e].T`` per row group over an NF4 fused expert weight, dequantised once per pass into ``buffers``;
    backward dequantises again (nothing dequantised is saved) and returns the input gradient only."""

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, param: torch.Tensor, counts: list[int], offs: torch.Tensor, buffers: DequantBuffers
    ) -> torch.Tensor:
        ctx.param, ctx.counts, ctx.buffers = param, counts, buffers
        ctx.save_for_backward(offs)
        weight = buffers.dequantize(param)
        return grouped_mm(x.to(weight.dtype).contiguous(), weight.transpose(-2, -1), counts, offs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None, None]:
        (offs,) = ctx.saved_tensors
        weight = ctx.buffers.dequantize(ctx.param)
        return grouped_mm(grad.to(weight.dtype).contiguous(), weight, ctx.counts, offs), None, None, None, None


def grouped_expert_linear(
    x: torch.Tensor, param: torch.Tensor, counts: list[int], offs: torch.Tensor, buffers: DequantBuffers
) -> torch.Tensor:
    """``x @ W[e].T`` per row group, ``param`` NF4 (:class:`NF4GroupedLinear`) or full precision (autograd)."""
    if isinstance(param, bnb.nn.Params4bit):
        return NF4GroupedLinear.apply(x, param, counts, offs, buffers)
    return grouped_mm(x.to(param.dtype).contiguous(), param.transpose(-2, -1), counts, offs)


def expert_buffers(module: nn.Module) -> DequantBuffers:
    """The dequantisation buffers of an experts module (its own when :func:`set_experts_forward` gave it none)."""
    buffers = getattr(module, BUFFERS_ATTRIBUTE, None)
    if buffers is None:
        buffers = DequantBuffers()
        setattr(module, BUFFERS_ATTRIBUTE, buffers)
    return buffers


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
    lora: ExpertDelta | None = getattr(self, LORA_ATTRIBUTE, None)
    buffers = expert_buffers(self)
    h = grouped_expert_linear(x, self.gate_up_proj, counts, offs, buffers)
    if lora is not None:
        h = h + lora.grouped_delta("gate_up", x, counts, offs)
    a = self._apply_gate(h)
    y = grouped_expert_linear(a, self.down_proj, counts, offs, buffers)
    if lora is not None:
        y = y + lora.grouped_delta("down", a, counts, offs)
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
    """Routed experts, one expert at a time, over NF4 (or full-precision) fused weights, plus the deltas of an
    attached expert adapter (drop-in for transformers' ``Experts.forward``)."""
    num_tokens, hidden = hidden_states.shape
    top_k = top_k_index.shape[-1]
    flat = top_k_index.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=self.num_experts).tolist()
    token_of = order // top_k
    routed = hidden_states[token_of]
    lora: ExpertDelta | None = getattr(self, LORA_ATTRIBUTE, None)
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
EXPERT_FORWARDS = tuple(_FORWARDS)


def use_nf4_experts_forward(module: nn.Module, mode: str | None = None, buffers: DequantBuffers | None = None) -> None:
    """Run this fused experts module through bioqa's forward: ``mode`` "routed" (:func:`nf4_experts_forward`),
    "grouped" (:func:`nf4_experts_forward_grouped`) or "auto"; None keeps the module's current mode (default
    routed). ``buffers``: the dequantisation buffers it shares with the model's other experts modules."""
    if not is_fused_experts(module):
        raise TypeError(f"{type(module).__name__} is not a fused gated experts module")
    mode = mode or getattr(module, MODE_ATTRIBUTE, "routed")
    if mode not in _FORWARDS:
        raise ValueError(f"experts_forward must be one of {EXPERT_FORWARDS}, got {mode!r}")
    setattr(module, MODE_ATTRIBUTE, mode)
    if buffers is not None:
        setattr(module, BUFFERS_ATTRIBUTE, buffers)
    module.forward = types.MethodType(_FORWARDS[mode], module)


def set_experts_forward(model: nn.Module, mode: str | None = None) -> list[str]:
    """Use ``mode`` (None: each module's current one) for every fused experts module of ``model``, all sharing one
    new :class:`DequantBuffers` (one layer's bf16 experts in memory, freed with the model); returns their names."""
    buffers = DequantBuffers()
    names = []
    for name, module in iter_fused_experts(model):
        use_nf4_experts_forward(module, mode, buffers)
        names.append(name)
    return names
