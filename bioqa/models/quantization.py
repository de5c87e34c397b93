"""QLoRA's 4-bit base model with EVERY frozen weight in NF4, Mixtral's fused experts included.

transformers' ``BitsAndBytesConfig(load_in_4bit=True)`` replaces ``nn.Linear`` layers only, so the fused 3-D
expert tensors of transformers 5.x MoE models stay in bf16 (most of Mixtral's weights). :func:`load_model_4bit`
registers a small extension of transformers' bitsandbytes quantizer (``quant_method="bioqa_nf4"``) that also
quantises those tensors. It plugs into transformers' own streaming loader, which materialises one checkpoint
tensor at a time (sequentially when quantising on the fly; per-expert checkpoint tensors are first merged into the
fused one), quantises it on its target device and frees it: peak memory stays near the NF4 size plus one fused
bf16 tensor under construction (Mixtral-8x7B: ~24 GB + 2 x 1.9 GB, not ~93 GB). GGUF checkpoints are
dequantised by transformers on load, so for them the model is loaded in full precision first and quantised
afterwards (:func:`quantize_model_`) — fine for small models.

Kept in full precision, as in QLoRA: embeddings, ``lm_head``, norms and MoE routers (not ``nn.Linear``;
a router is E x hidden, a negligible 0.01 % of Mixtral, and routing is sensitive to quantisation noise).
"""

from __future__ import annotations

import os
from typing import Any

import bitsandbytes as bnb
import torch
from torch import nn
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, PreTrainedModel
from transformers.quantizers import auto as quantizer_registry
from transformers.quantizers.quantizer_bnb_4bit import Bnb4BitHfQuantizer
from transformers.quantizers.quantizers_utils import get_module_from_name

from bioqa.models.nf4_experts import (
    EXPERT_PARAMS,
    is_fused_experts,
    set_experts_forward,
)

QUANT_METHOD = "bioqa_nf4"
BLOCKSIZE = 64


class NF4AllConfig(BitsAndBytesConfig):
    """``BitsAndBytesConfig`` (4-bit) whose quantizer also quantises fused MoE expert tensors."""

    def __init__(self, *args: Any, quantize_experts: bool = True, **kwargs: Any):
        kwargs.setdefault("load_in_4bit", True)
        super().__init__(*args, **kwargs)
        self.quantize_experts = quantize_experts
        self.quant_method = QUANT_METHOD


class _QuantizeExperts:
    """transformers conversion op: a loaded bf16 expert tensor (or a Linear weight) becomes ``Params4bit``."""

    def __init__(self, quantizer: NF4AllQuantizer):
        self.quantizer = quantizer
        self.linear_op = super(NF4AllQuantizer, quantizer).get_quantize_ops()

    def convert(self, input_dict: dict[str, Any], model: nn.Module | None = None, **kwargs: Any) -> dict[str, Any]:
        config = self.quantizer.quantization_config
        result = {}
        for name, value in input_dict.items():
            value = value[0] if isinstance(value, list) else value
            module, _ = get_module_from_name(model, name)
            if not is_fused_experts(module):
                result.update(self.linear_op.convert({name: value}, model=model, **kwargs))
                continue
            result[name] = to_params4bit(
                value.to(config.bnb_4bit_compute_dtype),
                config.bnb_4bit_quant_type,
                config.bnb_4bit_use_double_quant,
                value.device,
            )
            module._is_hf_initialized = True
        return result


class NF4AllQuantizer(Bnb4BitHfQuantizer):
    """transformers' bitsandbytes 4-bit quantizer plus the fused expert tensors."""

    quantization_config: NF4AllConfig

    def param_needs_quantization(self, model: PreTrainedModel, param_name: str, **kwargs: Any) -> bool:
        module, name = get_module_from_name(model, param_name)
        if self.quantization_config.quantize_experts and name in EXPERT_PARAMS and is_fused_experts(module):
            return True
        return super().param_needs_quantization(model, param_name, **kwargs)

    def get_quantize_ops(self) -> _QuantizeExperts:
        return _QuantizeExperts(self)

    def _process_model_after_weight_loading(self, model: PreTrainedModel, **kwargs: Any) -> PreTrainedModel:
        model = super()._process_model_after_weight_loading(model, **kwargs)
        if self.quantization_config.quantize_experts:
            set_experts_forward(model)
        return model


def register_quantizer() -> None:
    """Make ``quant_method="bioqa_nf4"`` known to transformers (its registry is process-global; called by
    :func:`load_model_4bit` right before loading, idempotent). Importing this module registers nothing."""
    if QUANT_METHOD not in quantizer_registry.AUTO_QUANTIZATION_CONFIG_MAPPING:
        quantizer_registry.register_quantization_config(QUANT_METHOD)(NF4AllConfig)
    if QUANT_METHOD not in quantizer_registry.AUTO_QUANTIZER_MAPPING:
        quantizer_registry.register_quantizer(QUANT_METHOD)(NF4AllQuantizer)


def to_params4bit(
    weight: torch.Tensor, quant_type: str = "nf4", double_quant: bool = True, device: torch.device | str | None = None
) -> bnb.nn.Params4bit:
    """Quantise one tensor (2-D or fused 3-D) to a frozen ``Params4bit`` on ``device``.

    bitsandbytes 0.50's CPU dequantisation kernel assumes quantisation blocks never straddle rows; a last
    dimension that is not a multiple of the block size silently gives wrong weights there, so it is refused.
    """
    device = torch.device(device or weight.device)
    if device.type == "cpu" and weight.shape[-1] % BLOCKSIZE:
        raise ValueError(
            f"cannot quantise a weight of shape {tuple(weight.shape)} on CPU: its last dimension is "
            f"not a multiple of {BLOCKSIZE} (bitsandbytes' CPU kernel would dequantise it wrongly)"
        )
    param = bnb.nn.Params4bit(
        weight.detach(),
        requires_grad=False,
        blocksize=BLOCKSIZE,
        compress_statistics=double_quant,
        quant_type=quant_type,
    )
    return param.to(device)


def quantize_model_(
    model: nn.Module,
    *,
    compute_dtype: torch.dtype = torch.bfloat16,
    quant_type: str = "nf4",
    double_quant: bool = True,
    experts: bool = True,
    skip_modules: tuple[str, ...] = ("lm_head",),
    experts_forward: str = "routed",
) -> nn.Module:
    """Quantise an in-memory model in place: every ``nn.Linear`` (except ``skip_modules``) becomes a
    ``bnb.nn.Linear4bit``, and (``experts=True``) fused expert tensors become ``Params4bit``, run by bioqa's
    ``experts_forward`` ("routed", "grouped" or "auto": see :mod:`bioqa.models.nf4_experts`)."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is not nn.Linear or child_name in skip_modules:
                continue
            layer = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=compute_dtype,
                compress_statistics=double_quant,
                quant_type=quant_type,
                device="meta",
            )
            layer.weight = to_params4bit(child.weight.to(compute_dtype), quant_type, double_quant, child.weight.device)
            layer.weight.module = layer
            layer.quant_state = layer.weight.quant_state
            if child.bias is not None:
                layer.bias = nn.Parameter(child.bias.detach().to(compute_dtype), requires_grad=False)
            layer.requires_grad_(False)
            setattr(module, child_name, layer)
        if experts and is_fused_experts(module) and name:
            for param_name in EXPERT_PARAMS:
                weight = getattr(module, param_name)
                setattr(
                    module, param_name, to_params4bit(weight.to(compute_dtype), quant_type, double_quant, weight.device)
                )
    if experts:
        set_experts_forward(model, experts_forward)
    model.is_loaded_in_4bit = True
    return model


def load_model_4bit(
    model_path: str | os.PathLike,
    *,
    gguf_file: str | None = None,
    compute_dtype: torch.dtype | str = torch.bfloat16,
    quant_type: str = "nf4",
    double_quant: bool = True,
    experts: bool = True,
    device_map: str | dict[str, Any] | None = None,
    skip_modules: tuple[str, ...] = ("lm_head",),
    experts_forward: str = "routed",
    **from_pretrained_kwargs: Any,
) -> PreTrainedModel:
    """Load a causal LM with every frozen weight in 4-bit (see the module docstring for what stays unquantised).

    ``device_map`` defaults to this process's GPU (``LOCAL_RANK``, for DDP) when there is one, else CPU
    (bitsandbytes 4-bit runs on CPU too). ``experts_forward``: see :func:`quantize_model_`.
    """
    compute_dtype = getattr(torch, compute_dtype) if isinstance(compute_dtype, str) else compute_dtype
    if device_map is None:
        device_map = {"": int(os.environ.get("LOCAL_RANK", 0))} if torch.cuda.is_available() else {"": "cpu"}
    if gguf_file is not None:
        model = AutoModelForCausalLM.from_pretrained(
            model_path, gguf_file=gguf_file, dtype=compute_dtype, device_map=device_map, **from_pretrained_kwargs
        )
        return quantize_model_(
            model,
            compute_dtype=compute_dtype,
            quant_type=quant_type,
            double_quant=double_quant,
            experts=experts,
            skip_modules=skip_modules,
            experts_forward=experts_forward,
        )
    register_quantizer()
    config = NF4AllConfig(
        bnb_4bit_compute_dtype=compute_dtype,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_use_double_quant=double_quant,
        llm_int8_skip_modules=list(skip_modules),
        quantize_experts=experts,
    )
    model = AutoModelForCausalLM.from_pretrained(
        model_path, quantization_config=config, dtype=compute_dtype, device_map=device_map, **from_pretrained_kwargs
    )
    if experts:
        set_experts_forward(model, experts_forward)
    return model


def quantization_report(model: nn.Module) -> dict[str, dict[str, float]]:
    """Per weight: logical parameter count and stored bytes per parameter (NF4 ≈ 0.5 + statistics)."""
    report = {}
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if isinstance(param, bnb.nn.Params4bit):
                state = param.quant_state
                numel = int(torch.Size(state.shape).numel())
                stored = param.numel() * param.element_size() + _state_bytes(state)
            else:
                numel = param.numel()
                stored = numel * param.element_size()
            report[full] = {"numel": numel, "bytes_per_param": stored / numel}
    return report


def _state_bytes(state: bnb.functional.QuantState) -> int:
    size = state.absmax.numel() * state.absmax.element_size()
    if state.nested:
        size += state.state2.absmax.numel() * state.state2.absmax.element_size()
    return size


def random_model_4bit(
    tokenizer_path: str | os.PathLike,
    tokenizer_gguf_file: str | None = None,
    architecture: str = "mixtral",
    seed: int = 0,
    compute_dtype: torch.dtype | str = torch.float32,
    quant_type: str = "nf4",
    double_quant: bool = True,
    experts_forward: str = "routed",
    **config: Any,
) -> PreTrainedModel:
    """The tiny random model of ``bioqa.models.tiny.random_model`` (same seed, same weights), quantised in memory."""
    from bioqa.models.tiny import load_tokenizer, random_model

    compute_dtype = getattr(torch, compute_dtype) if isinstance(compute_dtype, str) else compute_dtype
    model = random_model(load_tokenizer(tokenizer_path, tokenizer_gguf_file), architecture, seed, **config)
    return quantize_model_(
        model,
        compute_dtype=compute_dtype,
        quant_type=quant_type,
        double_quant=double_quant,
        experts_forward=experts_forward,
    )
