"""NF4 for every frozen weight, Mixtral's fused experts included: storage, numerics, routed forward and grads."""

from __future__ import annotations

import copy
import subprocess
import sys

import bitsandbytes as bnb
import bitsandbytes.functional as bnbf
import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, MixtralConfig

from bioqa.models import nf4_experts
from bioqa.models.lora_experts import add_expert_lora
from bioqa.models.nf4_experts import (
    BUFFERS_ATTRIBUTE,
    DequantBuffers,
    dequantize_experts,
    expert_packed,
    expert_quant_states,
    iter_fused_experts,
    set_experts_forward,
)
from bioqa.models.quantization import (
    QUANT_METHOD,
    NF4AllQuantizer,
    load_model_4bit,
    quantization_report,
    quantize_model_,
    to_params4bit,
)

torch.set_num_threads(2)


def tiny_mixtral_config(hidden: int = 64, ffn: int = 128) -> MixtralConfig:
    return MixtralConfig(
        vocab_size=256,
        hidden_size=hidden,
        intermediate_size=ffn,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=128,
    )


def tiny_mixtral(dtype: torch.dtype = torch.float32, seed: int = 0, **sizes: int) -> nn.Module:
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_mixtral_config(**sizes), dtype=dtype).eval()


def dequantized_copy(original: nn.Module, quantized: nn.Module) -> nn.Module:
    """``original`` with every weight replaced by the dequantised value of its 4-bit counterpart."""
    reference = copy.deepcopy(original)
    modules = dict(quantized.named_modules())
    with torch.no_grad():
        for name, module in reference.named_modules():
            twin = modules[name]
            if isinstance(twin, bnb.nn.Linear4bit):
                module.weight.copy_(bnbf.dequantize_4bit(twin.weight.data, twin.weight.quant_state))
            for param_name in ("gate_up_proj", "down_proj"):
                if isinstance(getattr(twin, param_name, None), bnb.nn.Params4bit):
                    getattr(module, param_name).copy_(dequantize_experts(getattr(twin, param_name)))
    return reference


@pytest.fixture(scope="module")
def saved_mixtral(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-mixtral")
    tiny_mixtral(torch.bfloat16).save_pretrained(path)
    return path


def test_loading_quantises_every_attention_and_expert_weight(saved_mixtral):
    model = load_model_4bit(saved_mixtral)
    assert isinstance(model.hf_quantizer, NF4AllQuantizer)
    report = quantization_report(model)
    four_bit = {name: r for name, r in report.items() if "self_attn" in name or ".experts." in name}
    assert len(four_bit) == 2 * (4 + 2)  # q, k, v, o + gate_up, down per layer
    for name, entry in four_bit.items():
        assert 0.5 <= entry["bytes_per_param"] < 0.54, name  # NF4 + double-quantised absmax
    kept = {name: r for name, r in report.items() if name not in four_bit}
    assert all(r["bytes_per_param"] == 2.0 for r in kept.values())  # bf16 embeddings, norms, routers, lm_head
    assert any(".mlp.gate." in name for name in kept)
    expert_params = sum(r["numel"] for n, r in four_bit.items() if ".experts." in n)
    assert expert_params == 2 * 4 * 3 * 64 * 128


def test_without_expert_quantisation_experts_stay_bf16(saved_mixtral):
    """What transformers' own BitsAndBytesConfig does: the fused experts are left in 16 bits."""
    report = quantization_report(load_model_4bit(saved_mixtral, experts=False))
    assert report["model.layers.0.mlp.experts.gate_up_proj"]["bytes_per_param"] == 2.0
    assert report["model.layers.0.self_attn.q_proj.weight"]["bytes_per_param"] < 0.54


def test_loading_and_in_memory_quantisation_agree(saved_mixtral):
    loaded = load_model_4bit(saved_mixtral)
    in_memory = quantize_model_(AutoModelForCausalLM.from_pretrained(saved_mixtral, dtype=torch.bfloat16))
    for (name, a), (_, b) in zip(loaded.named_parameters(), in_memory.named_parameters(), strict=True):
        assert torch.equal(a.data, b.data), name


def test_quantised_outputs_match_dequantised_reference():
    original = tiny_mixtral()
    quantized = quantize_model_(copy.deepcopy(original), compute_dtype=torch.float32)
    reference = dequantized_copy(original, quantized)
    ids = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        q, r, o = (m(ids).logits for m in (quantized, reference, original))
    torch.testing.assert_close(q, r, atol=1e-5, rtol=1e-5)
    # and NF4 stays close to the unquantised model (random init: ~10 % relative error)
    assert (q - o).norm() / o.norm() < 0.25
    assert not torch.equal(q, o)


def _manual_experts(experts: nn.Module, gate_up: torch.Tensor, down: torch.Tensor, x, index, weights, lora=None):
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(index.shape[1]):
            e = int(index[t, j])
            h = x[t] @ gate_up[e].t()
            if lora is not None:
                h = h + lora.scaling * (x[t] @ lora.gate_up_A[e].t() @ lora.gate_up_B[e].t())
            g, u = h.chunk(2)
            a = experts.act_fn(g) * u
            y = a @ down[e].t()
            if lora is not None:
                y = y + lora.scaling * (a @ lora.down_A[e].t() @ lora.down_B[e].t())
            out[t] = out[t] + weights[t, j] * y
    return out


@pytest.mark.parametrize(
    ("mode", "with_lora", "kernel"),
    [
        ("routed", False, True),
        ("routed", True, True),
        ("grouped", False, True),
        ("grouped", True, True),
        ("grouped", True, False),  # the per-expert loop over the same buffer (no aligned grouped_mm)
    ],
)
def test_nf4_experts_match_reference_values_and_gradients(mode, with_lora, kernel, monkeypatch):
    if not kernel:
        monkeypatch.setattr(nf4_experts, "_grouped_mm_ok", lambda *tensors: False)
    model = quantize_model_(tiny_mixtral(), compute_dtype=torch.float32)
    set_experts_forward(model, mode)
    experts = dict(iter_fused_experts(model))["model.layers.0.mlp.experts"]
    lora = None
    if with_lora:
        add_expert_lora(model, r=4, alpha=8)
        lora = experts.bioqa_lora
        with torch.no_grad():
            lora.gate_up_B.normal_(std=0.1)
            lora.down_B.normal_(std=0.1)
    gate_up, down = dequantize_experts(experts.gate_up_proj), dequantize_experts(experts.down_proj)
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(12, 64, generator=generator, requires_grad=True)
    index = torch.stack([torch.randperm(4, generator=generator)[:2] for _ in range(12)])
    weights = torch.rand(12, 2, generator=generator)

    out = experts(x, index, weights)
    expected = _manual_experts(experts, gate_up, down, x, index, weights, lora)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)

    grad_out = torch.randn_like(out)
    params = [x, *(lora.parameters() if lora else [])]
    got = torch.autograd.grad(out, params, grad_out)
    want = torch.autograd.grad(expected, params, grad_out)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)
        assert g.abs().sum() > 0


def test_grouped_experts_dequantise_each_weight_once_per_pass_and_skip_idle_experts(monkeypatch):
    model = quantize_model_(tiny_mixtral(), compute_dtype=torch.float32)
    set_experts_forward(model, "grouped")
    experts = dict(iter_fused_experts(model))["model.layers.0.mlp.experts"]
    calls = []
    dequantize = bnbf.dequantize_4bit
    monkeypatch.setattr(bnbf, "dequantize_4bit", lambda *a, **k: calls.append(a[1].shape) or dequantize(*a, **k))
    x = torch.randn(40, 64, generator=torch.Generator().manual_seed(4), requires_grad=True)
    index = torch.tensor([[0, 3]] * 40)  # experts 1 and 2 receive nothing
    weights = torch.full((40, 2), 0.5)
    out = experts(x, index, weights)
    assert len(calls) == 2  # gate_up and down, once each
    out.square().sum().backward()
    assert len(calls) == 4  # and once each again for the input gradient
    set_experts_forward(model, "routed")
    torch.testing.assert_close(out, experts(x, index, weights), atol=1e-5, rtol=1e-4)


def test_auto_experts_forward_switches_on_the_number_of_tokens(monkeypatch):
    model = quantize_model_(tiny_mixtral(), compute_dtype=torch.float32)
    set_experts_forward(model, "auto")
    used = []
    for name in ("nf4_experts_forward", "nf4_experts_forward_grouped"):
        original = getattr(nf4_experts, name)
        monkeypatch.setattr(nf4_experts, name, lambda *a, _n=name, _f=original: used.append(_n) or _f(*a))
    ids = torch.randint(0, 256, (1, nf4_experts.GROUPED_MIN_TOKENS), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        model(ids)
        model(ids[:, :8])
    assert used == ["nf4_experts_forward_grouped"] * 2 + ["nf4_experts_forward"] * 2
    with pytest.raises(ValueError, match="experts_forward must be one of"):
        set_experts_forward(model, "fused")


def test_dequantisation_buffers_belong_to_their_model():
    """One owner shared by a model's experts modules (one layer's bf16 experts in memory), another model's its
    own: nothing process-global to release, and adding an adapter keeps the sharing."""
    owners = []
    for seed in (0, 1):
        model = quantize_model_(tiny_mixtral(seed=seed), compute_dtype=torch.float32)
        add_expert_lora(model, r=4, alpha=8)
        held = {id(getattr(m, BUFFERS_ATTRIBUTE)) for _, m in iter_fused_experts(model)}
        assert len(held) == 1 and len(list(iter_fused_experts(model))) == 2
        owners.append(getattr(dict(iter_fused_experts(model))["model.layers.0.mlp.experts"], BUFFERS_ATTRIBUTE))
    assert owners[0] is not owners[1] and all(isinstance(o, DequantBuffers) for o in owners)


@pytest.mark.slow  # a fresh interpreter importing transformers
def test_importing_registers_nothing_with_transformers_and_loading_registers_once():
    code = (
        "import bioqa.models.quantization as q\n"
        "from transformers.quantizers import auto\n"
        "m = q.QUANT_METHOD\n"
        "print(m in auto.AUTO_QUANTIZER_MAPPING, m in auto.AUTO_QUANTIZATION_CONFIG_MAPPING)\n"
        "q.register_quantizer(); q.register_quantizer()\n"
        "print(auto.AUTO_QUANTIZER_MAPPING[q.QUANT_METHOD] is q.NF4AllQuantizer)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "True"] and QUANT_METHOD == "bioqa_nf4"


def test_expert_lora_starts_as_identity():
    model = quantize_model_(tiny_mixtral(), compute_dtype=torch.float32)
    ids = torch.randint(0, 256, (1, 24), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = model(ids).logits
        add_expert_lora(model, r=4, alpha=8)
        after = model(ids).logits
    torch.testing.assert_close(before, after)


@pytest.mark.parametrize(("hidden", "ffn", "nested_slices"), [(64, 128, True), (64, 96, False)])
def test_per_expert_states_dequantise_each_expert_exactly(hidden, ffn, nested_slices):
    """Expert slices of the (double-quantised) statistics: direct 8-bit slices when each expert holds whole
    256-block groups (real model shapes), else slices of the dequantised absmax."""
    weight = torch.randn(4, 2 * ffn, hidden)
    param = to_params4bit(weight)
    states = expert_quant_states(param)
    assert all(s.nested == nested_slices for s in states)
    full = dequantize_experts(param)
    for e, state in enumerate(states):
        torch.testing.assert_close(bnbf.dequantize_4bit(expert_packed(param, e), state), full[e], atol=0, rtol=0)
    assert (full - weight).norm() / weight.norm() < 0.12  # NF4 error on Gaussian weights


def test_cpu_refuses_shapes_its_kernel_dequantises_wrongly():
    with pytest.raises(ValueError, match="multiple of 64"):
        to_params4bit(torch.randn(64, 96), device="cpu")


def test_generation_runs_on_nf4_experts():
    model = quantize_model_(tiny_mixtral(), compute_dtype=torch.float32)
    ids = torch.randint(0, 256, (1, 8), generator=torch.Generator().manual_seed(4))
    reference = dequantized_copy(tiny_mixtral(), model)
    out = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
    want = reference.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(out, want)
