"""Training-speed levers compute what the plain path computes: sequence packing, checkpointing chosen by a memory
budget, Liger wiring, torch.compile of NF4 decoder layers (tiny random 4-bit Mixtral, the tiny tokenizer)."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers import CHATS

from bioqa.errors import ConfigError
from bioqa.models.adapters import LoraSettings, add_lora
from bioqa.models.hf import random_model
from bioqa.models.quantization import quantize_model_
from bioqa.resources import demo_golden_path
from bioqa.training import kernels
from bioqa.training.data import (
    IGNORE_INDEX,
    ChatDataModule,
    collate,
    collate_packed,
    pack_lengths,
    padding_fraction,
    read_chat_jsonl,
    tokenize_example,
)
from bioqa.training.memory import ModelShape, apply_checkpointing, decoder_layers, peak_gb, plan_checkpointing
from bioqa.training.module import QLoRAModule
from bioqa.training.recipe import DataSettings, checkpoint_plan

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MIXTRAL_8X7B = ModelShape(layers=32, hidden=4096, ffn=14336, heads=32, kv_heads=8, vocab=32000, experts=8, top_k=2)


@pytest.fixture(scope="module")
def items(tokenizer):
    return [tokenize_example(tokenizer, chat) for chat in CHATS]


def lora_mixtral(tokenizer, layers: int = 2, experts_forward: str = "routed"):
    """A tiny 4-bit Mixtral with LoRA on attention and experts; B initialised non-zero so every adapter matters."""
    model = random_model(
        tokenizer, "mixtral", seed=0, num_hidden_layers=layers, intermediate_size=128, num_local_experts=4
    )
    quantize_model_(model, compute_dtype=torch.float32, experts_forward=experts_forward)
    model = add_lora(model, LoraSettings(r=4, alpha=8, dropout=0.0, experts=True))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad and ("lora_B" in name or "_B" in name.rsplit(".", 1)[-1]):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return model.train()


def loss_and_grads(model, batch) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = model(**batch, use_cache=False).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def model(tokenizer):
    return lora_mixtral(tokenizer)


# --- sequence packing -------------------------------------------------------------------------------------------


def test_packed_loss_and_gradients_equal_the_padded_batch(model, items, tokenizer):
    padded_loss, padded_grads = loss_and_grads(model, collate(items, tokenizer.pad_token_id))
    packed = collate_packed([items], tokenizer.pad_token_id)
    assert packed["input_ids"].shape == (1, sum(len(i["input_ids"]) for i in items))
    packed_loss, packed_grads = loss_and_grads(model, packed)
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    assert padded_grads.keys() == packed_grads.keys() and len(padded_grads) == 2 * (8 + 4)
    for name, grad in padded_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, atol=1e-6, rtol=1e-4, msg=name)
        assert grad.abs().sum() > 0, name
    # the masking is really per example: without the restarting position ids, examples see each other
    leaky = dict(packed)
    leaky.pop("position_ids")
    assert abs(loss_and_grads(model, leaky)[0] - padded_loss) > 1e-4


def test_packed_rows_with_padding_match_too(model, items, tokenizer):
    padded_loss, padded_grads = loss_and_grads(model, collate(items, tokenizer.pad_token_id))
    packed = collate_packed([items[:2], items[2:]], tokenizer.pad_token_id)  # the second row is right-padded
    assert (packed["labels"][1] == IGNORE_INDEX).sum() > len(items[2]["input_ids"]) - len(CHATS[2][-1]["content"])
    packed_loss, packed_grads = loss_and_grads(model, packed)
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    for name, grad in padded_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, atol=1e-6, rtol=1e-4, msg=name)


def test_collate_packed_restarts_positions_and_masks_each_first_label():
    a = {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}
    b = {"input_ids": [8, 9], "labels": [8, 9]}
    batch = collate_packed([[a, b], [b]], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [8, 9, 0, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 0, 1, 2]]
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, 9], [-100, 9, -100, -100, -100]]
    assert "attention_mask" not in batch


@pytest.mark.parametrize(
    ("lengths", "capacity", "expected"),
    [
        ([5, 3, 2, 4], 8, [[0, 1], [3, 2]]),
        ([8, 8], 8, [[0], [1]]),
        ([1, 1, 1], 8, [[0, 1, 2]]),
        ([], 8, []),
    ],
)
def test_pack_lengths_first_fit_decreasing(lengths, capacity, expected):
    packs = pack_lengths(lengths, capacity)
    assert packs == expected
    assert sorted(i for pack in packs for i in pack) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in pack) <= capacity for pack in packs)


@pytest.mark.parametrize(
    ("lengths", "capacity", "match"),
    [([9], 8, "more than pack_length=8"), ([3, 12, 1], 10, "example 1 has 12 tokens")],
)
def test_pack_lengths_refuses_examples_longer_than_a_row(lengths, capacity, match):
    with pytest.raises(ValueError, match=match):
        pack_lengths(lengths, capacity)


def test_padding_fraction():
    assert padding_fraction([(10, 10), (10, 5)]) == 0.25
    assert padding_fraction([]) == 0.0


def test_datamodule_packs_the_paper_jsonl(shared_dir, tokenizer):
    files = sorted((shared_dir / "fewshot").glob("07_QA_YesNo_11B1-3-4_*.jsonl"))
    examples = read_chat_jsonl(files[0])
    module = ChatDataModule(tokenizer, files, data_format="chat_jsonl", max_length=2048, packing=True, batch_size=1)
    module.setup("fit")
    rows = list(module.train_dataloader())
    assert len(rows) < len(examples)
    assert sum(int((r["labels"] != IGNORE_INDEX).sum()) for r in rows) == sum(
        sum(label != IGNORE_INDEX for label in item["labels"][1:]) for item in module.train_set.items
    )
    assert all(r["input_ids"].shape[1] <= 2048 and "attention_mask" not in r for r in rows)


def test_datamodule_refuses_rows_shorter_than_examples(tokenizer):
    with pytest.raises(ValueError, match="pack_length=512 is shorter than max_length=1024"):
        ChatDataModule(
            tokenizer, [demo_golden_path()], builder=object(), packing=True, pack_length=512, max_length=1024
        )


# --- activation checkpointing chosen by a memory budget ----------------------------------------------------------


@pytest.mark.parametrize("layers", [[0], [1], [0, 1, 2]])
def test_checkpointing_some_layers_gives_the_same_loss_and_gradients(tokenizer, items, layers):
    model = lora_mixtral(tokenizer, layers=3)
    batch = collate(items, tokenizer.pad_token_id)
    plain_loss, plain_grads = loss_and_grads(model, batch)
    QLoRAModule(model, gradient_checkpointing=layers)
    assert [block.gradient_checkpointing for block in decoder_layers(model)] == [i in layers for i in range(3)]
    loss, grads = loss_and_grads(model, batch)
    assert loss == pytest.approx(plain_loss, rel=1e-6)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_checkpointing_really_recomputes_only_the_chosen_layers(tokenizer, items):
    model = lora_mixtral(tokenizer, layers=3)
    apply_checkpointing(model, [1])
    calls = []
    for i, block in enumerate(decoder_layers(model)):
        block.self_attn.register_forward_hook(lambda *_, i=i: calls.append(i))
    loss_and_grads(model, collate(items, tokenizer.pad_token_id))
    assert calls == [0, 1, 2, 1]  # layer 1 runs again in the backward pass
    assert apply_checkpointing(model, []) == [] and not any(b.gradient_checkpointing for b in decoder_layers(model))


def test_planner_checkpoints_nothing_when_it_fits_and_more_layers_as_the_budget_shrinks():
    roomy = plan_checkpointing(MIXTRAL_8X7B, seq=4096, budget_gb=140)
    assert roomy.layers == [] and roomy.fits
    counts = [len(plan_checkpointing(MIXTRAL_8X7B, seq=8192, budget_gb=b).layers) for b in (140, 80, 60, 40)]
    assert counts == sorted(counts) and counts[-1] > counts[0]
    plan = plan_checkpointing(MIXTRAL_8X7B, seq=8192, budget_gb=40, lora_r=64)
    assert plan.fits and plan.peak_gb <= 40 and plan.layers == list(range(len(plan.layers)))
    assert plan.peak_gb == pytest.approx(peak_gb(plan.items_gb, 32, len(plan.layers)), abs=0.05)
    assert 22 < plan.items_gb["weights_nf4"] < 23  # 46.7 B parameters in NF4 ≈ 24.1e9 bytes = 22.4 GiB
    hopeless = plan_checkpointing(MIXTRAL_8X7B, seq=8192, budget_gb=20)
    assert not hopeless.fits and len(hopeless.layers) == 32


def test_grouped_experts_cost_one_layer_of_bf16_experts_in_the_estimate():
    routed = plan_checkpointing(MIXTRAL_8X7B, seq=4096, budget_gb=80).items_gb["experts_transient_bf16"]
    grouped = plan_checkpointing(MIXTRAL_8X7B, seq=4096, budget_gb=80, experts_forward="grouped")
    assert grouped.items_gb["experts_transient_bf16"] == pytest.approx(8 * routed, rel=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"budget_gb": 0}, "positive number"),
        ({"budget_gb": -3}, "positive number"),
        ({"budget_gb": float("nan")}, "positive number"),
        ({"budget_gb": float("inf")}, "positive number"),
        ({"budget_gb": 40, "seq": 0}, "seq and batch must be positive"),
        ({"budget_gb": 40, "batch": 0}, "seq and batch must be positive"),
    ],
)
def test_planner_refuses_nonsense(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plan_checkpointing(MIXTRAL_8X7B, **{"seq": 4096, **kwargs})


def test_auto_checkpointing_needs_a_budget_and_plans_from_the_model(model):
    data = DataSettings(train_files=["x"], max_length=512)
    with pytest.raises(ConfigError, match="needs memory_budget_gb"):
        checkpoint_plan(model, data, LoraSettings(r=4), None)
    assert checkpoint_plan(model, data, LoraSettings(r=4), 8.0).layers == []
    assert checkpoint_plan(model, data, LoraSettings(r=4), 1e-3).layers == [0, 1]


def test_model_shape_from_a_transformers_config(model):
    shape = ModelShape.from_config(model.config)
    assert (shape.layers, shape.hidden, shape.ffn, shape.experts, shape.top_k) == (2, 64, 128, 4, 2)


# --- Liger-Kernel wiring and torch.compile ----------------------------------------------------------------------


def test_liger_is_skipped_with_a_warning_on_cpu(model, caplog):
    norm_forward = decoder_layers(model)[0].input_layernorm.forward
    with caplog.at_level(logging.WARNING):
        record = kernels.apply_liger(model)
    assert record.startswith("skipped: Liger-Kernel is Triton/CUDA-only and the model is on cpu")
    assert "liger=true" in caplog.text
    assert decoder_layers(model)[0].input_layernorm.forward == norm_forward


@pytest.mark.parametrize(("architecture", "swiglu"), [("mixtral", False), ("llama", True)])
def test_liger_on_cuda_keeps_the_nf4_experts_and_patches_the_rest(tokenizer, architecture, swiglu, monkeypatch):
    monkey_patch = pytest.importorskip("liger_kernel.transformers.monkey_patch", reason="pip install .[gpu]")
    tiny = quantize_model_(random_model(tokenizer, architecture, num_local_experts=4), compute_dtype=torch.float32)
    kwargs, record = kernels.liger_kwargs(tiny, "cuda")
    assert kwargs["swiglu"] is swiglu and kwargs["fused_linear_cross_entropy"] and kwargs["rms_norm"]
    calls = []

    def liger_apply(
        rope=True, cross_entropy=False, fused_linear_cross_entropy=True, rms_norm=True, swiglu=True, model=None
    ):
        calls.append(dict(rope=rope, fused_linear_cross_entropy=fused_linear_cross_entropy, swiglu=swiglu, model=model))

    monkeypatch.setitem(monkey_patch.MODEL_TYPE_TO_APPLY_LIGER_FN, architecture, liger_apply)
    monkeypatch.setattr(kernels, "liger_kwargs", lambda m, device_type: (kwargs, record))
    assert kernels.apply_liger(tiny) == record
    assert calls[0]["model"] is tiny and calls[0]["swiglu"] is swiglu


@pytest.mark.slow
def test_compiled_nf4_decoder_layers_give_the_same_loss_and_gradients(tokenizer, items):
    """torch.compile of the decoder layers with NF4 weights on CPU (~3 min here: inductor builds C++ kernels)."""
    model = lora_mixtral(tokenizer, layers=1)
    batch = collate(items, tokenizer.pad_token_id)
    plain_loss, plain_grads = loss_and_grads(model, batch)
    assert kernels.compile_decoder_layers(model) == 1
    loss, grads = loss_and_grads(model, batch)
    assert loss == pytest.approx(plain_loss, rel=1e-5)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("value", ["sometimes", "True", "", "AUTO"])
def test_train_refuses_unknown_checkpointing_modes(value, tmp_path):
    from bioqa.training.recipe import train

    with pytest.raises(ConfigError, match="gradient_checkpointing must be true, false or auto"):
        train(None, None, data=DataSettings(train_files=["x"]), output_dir=tmp_path, gradient_checkpointing=value)
