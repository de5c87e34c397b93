"""LoRA adapters on the fused experts of a MoE layer (beside PEFT's LoRA on the linear layers, see
:mod:`bioqa.models.adapters`): the adapter, attaching it to a model, and its tensors for saving and loading.

The experts' forward (:mod:`bioqa.models.nf4_experts`, NF4 or full precision) adds the adapter's deltas through the
:class:`~bioqa.models.nf4_experts.ExpertDelta` interface: ``delta`` for one expert's rows (routed forward) and
``grouped_delta`` for all experts' row groups at once (grouped forward).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bioqa.models.nf4_experts import LORA_ATTRIBUTE, grouped_mm, iter_fused_experts, logical_shape, set_experts_forward


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
        """The delta of projection ``name`` ("gate_up", "down") for the rows ``x`` of one ``expert``."""
        a, b = getattr(self, f"{name}_A")[expert], getattr(self, f"{name}_B")[expert]
        return (self.dropout(x).to(a.dtype) @ a.t() @ b.t()).to(x.dtype) * self.scaling

    def grouped_delta(self, name: str, x: torch.Tensor, counts: list[int], offs: torch.Tensor) -> torch.Tensor:
        """The delta for consecutive row groups of the experts (two grouped GEMMs)."""
        a, b = getattr(self, f"{name}_A"), getattr(self, f"{name}_B")
        low = grouped_mm(self.dropout(x).to(a.dtype).contiguous(), a.transpose(-2, -1), counts, offs)
        return (grouped_mm(low, b.transpose(-2, -1), counts, offs) * self.scaling).to(x.dtype)


def add_expert_lora(model: nn.Module, r: int, alpha: float, dropout: float = 0.0) -> list[str]:
    """Attach a trainable :class:`ExpertLoRA` to every fused experts module (4-bit or not), run through bioqa's
    experts forward; returns their names."""
    names = []
    for name, module in list(iter_fused_experts(model)):
        num_experts, two_ffn, hidden = logical_shape(module.gate_up_proj)
        lora = ExpertLoRA(num_experts, hidden, two_ffn // 2, r, alpha, dropout, device=module.gate_up_proj.device)
        module.add_module(LORA_ATTRIBUTE, lora)
        names.append(name)
    set_experts_forward(model)
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
