"""QLoRA training on a tiny 4-bit Mixtral: loss goes down, every adapter learns, adapters reload exactly."""

from __future__ import annotations

import json

import bitsandbytes as bnb
import pytest
import torch
from helpers import CHATS, CONF, compose_config
from peft import PeftModel
from transformers import AutoModelForCausalLM

from bioqa.loggers import wandb_mode
from bioqa.models.adapters import (
    EXPERT_LORA_FILE,
    LoraSettings,
    add_lora,
    load_adapter,
    merge_and_save,
    save_adapter,
)
from bioqa.models.embedded import SMOLLM2_GGUF, smollm2_dir
from bioqa.models.hf import HFBackend, load_tokenizer, random_model
from bioqa.models.quantization import load_model_4bit
from bioqa.resources import demo_golden_path
from bioqa.rundir import TRAINING_INFO as TRAINING_INFO_FILE
from bioqa.training.data import collate, tokenize_example
from bioqa.training.module import QLoRAModule, warmup_schedule
from bioqa.training.recipe import DataSettings, OptimSettings, train

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def mixtral_dir(tmp_path_factory, tokenizer):
    """A tiny random Mixtral (hidden 64, FFN 128, 4 experts, top-2) with the tiny tokenizer, saved like a hub dir."""
    path = tmp_path_factory.mktemp("tiny-mixtral")
    model = random_model(
        tokenizer, "mixtral", seed=0, hidden_size=64, intermediate_size=128, num_local_experts=4, num_experts_per_tok=2
    )
    model.to(torch.bfloat16).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def batch(tokenizer):
    return collate([tokenize_example(tokenizer, chat) for chat in CHATS[:2]], tokenizer.pad_token_id)


def lora_model(mixtral_dir, experts: bool, compute_dtype=torch.float32):
    model = load_model_4bit(mixtral_dir, compute_dtype=compute_dtype)
    return add_lora(model, LoraSettings(r=4, alpha=8, dropout=0.0, experts=experts))


def take_steps(module: QLoRAModule, batch, steps: int, lr: float = 1e-2) -> list[float]:
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=lr)
    module.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = module.model(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_two_steps_lower_the_loss_and_every_adapter_gets_a_gradient(mixtral_dir, batch):
    peft_model = lora_model(mixtral_dir, experts=True)
    module = QLoRAModule(peft_model)
    trainable = dict((n, p) for n, p in module.named_parameters() if p.requires_grad)
    assert len(trainable) == 2 * (4 * 2 + 4)  # per layer: q,k,v,o lora_A/B + expert gate_up/down A/B
    assert sum(".bioqa_lora." in n for n in trainable) == 8
    frozen = {n: p.data.clone() for n, p in module.named_parameters() if isinstance(p, bnb.nn.Params4bit)}
    assert len(frozen) == 2 * (4 + 2)

    losses = take_steps(module, batch, steps=2)  # B starts at zero: A's gradient is zero in the first step only
    zero = [n for n, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert zero == []
    assert all(torch.equal(p.data, frozen[n]) for n, p in module.named_parameters() if n in frozen)
    with torch.no_grad():
        after = module.model(**batch).loss.item()
    assert after < losses[0]


def test_checkpoints_hold_only_the_adapters(mixtral_dir):
    module = QLoRAModule(lora_model(mixtral_dir, experts=False))
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["state_dict"] and all("lora_" in k for k in checkpoint["state_dict"])
    module.on_load_checkpoint(checkpoint)
    with pytest.raises(ValueError, match="lacks adapter weights"):
        module.on_load_checkpoint({"state_dict": {}})


def test_saved_adapter_reloads_through_hfbackend_with_identical_logits(mixtral_dir, batch, tokenizer, tmp_path):
    peft_model = lora_model(mixtral_dir, experts=False, compute_dtype=torch.bfloat16)  # what HFBackend loads
    take_steps(QLoRAModule(peft_model), batch, steps=2)
    adapter = save_adapter(peft_model, tmp_path / "adapter", tokenizer, {"prompt": "test"})
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", TRAINING_INFO_FILE} <= {
        p.name for p in adapter.iterdir()
    }
    backend = HFBackend(model_path=mixtral_dir, load_in_4bit=True, adapter=adapter)
    with torch.no_grad():
        want = peft_model.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        got = backend.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.equal(got, want)


def test_expert_adapters_reload_with_load_adapter(mixtral_dir, batch, tmp_path):
    peft_model = lora_model(mixtral_dir, experts=True)
    take_steps(QLoRAModule(peft_model), batch, steps=2)
    adapter = save_adapter(peft_model, tmp_path / "adapter")
    assert (adapter / EXPERT_LORA_FILE).is_file()
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        want = peft_model.eval()(**inputs).logits
        got = load_adapter(load_model_4bit(mixtral_dir, compute_dtype=torch.float32), adapter).eval()(**inputs).logits
        peft_only = PeftModel.from_pretrained(load_model_4bit(mixtral_dir, compute_dtype=torch.float32), str(adapter))
        partial = peft_only.eval()(**inputs).logits
    assert torch.equal(got, want)
    assert not torch.allclose(partial, want)  # plain PEFT loading misses the expert adapters


def test_warmup_then_cosine_or_linear_decay():
    assert warmup_schedule(0, 4, 20) == pytest.approx(0.2)
    assert warmup_schedule(4, 4, 20) == pytest.approx(1.0)
    assert warmup_schedule(12, 4, 20, "cosine") == pytest.approx(0.5)
    assert warmup_schedule(12, 4, 20, "linear") == pytest.approx(0.5)
    assert warmup_schedule(20, 4, 20, "cosine") == pytest.approx(0.0)
    assert warmup_schedule(15, 4, 20, "constant") == 1.0


def _one_shot_prompt():
    from omegaconf import OmegaConf

    from bioqa.prompts import PromptConfig

    cfg = compose_config("1shot", config_dir=CONF / "prompt")
    values = OmegaConf.to_container(cfg, resolve=False)
    values.update(pool="demo", pool_path=None)
    return PromptConfig.from_dict(values)


def test_recipe_trains_writes_an_adapter_and_resumes_from_last(mixtral_dir, tokenizer, tmp_path):
    data = DataSettings(train_files=[str(demo_golden_path())], kinds=("exact",), val_fraction=0.25, max_length=768)
    common = dict(
        data=data,
        lora=LoraSettings(r=4, alpha=8, dropout=0.0, experts=True),
        optim=OptimSettings(lr=1e-3, warmup_ratio=0.0),
        prompt=_one_shot_prompt(),
        early_stopping_patience=None,
    )
    trainer = {
        "accelerator": "cpu",
        "max_steps": 2,
        "limit_val_batches": 1,
        "val_check_interval": 2,
        "enable_progress_bar": False,
        "num_sanity_val_steps": 0,
    }
    first = train(
        load_model_4bit(mixtral_dir, compute_dtype=torch.float32),
        tokenizer,
        output_dir=tmp_path / "run1",
        trainer_kwargs=trainer,
        **common,
    )
    info = json.loads((first.adapter_dir / TRAINING_INFO_FILE).read_text())
    assert info["global_step"] == 2 and info["data"]["n_train"] == 9 and info["data"]["n_val"] == 3
    assert info["lora"]["experts"] is True and info["prompt"]["n_shots"] == 1
    assert "val/loss" in info["metrics"]
    assert (tmp_path / "run1" / "checkpoints" / "last.ckpt").is_file()

    second = train(
        load_model_4bit(mixtral_dir, compute_dtype=torch.float32),
        tokenizer,
        output_dir=tmp_path / "run2",
        trainer_kwargs={**trainer, "max_steps": 3},
        ckpt_path="last",
        resume_root=tmp_path,
        **common,
    )
    assert json.loads((second.adapter_dir / TRAINING_INFO_FILE).read_text())["global_step"] == 3


@pytest.mark.slow
def test_short_qlora_run_changes_smollm2_answers(smollm2_tokenizer, tmp_path):
    """The embedded SmolLM2 (GGUF → NF4 on CPU) learns new answers for its training questions."""
    questions = [
        ("What is the codename of the bioqa test protein?", "ZEBRA-17"),
        ("Which colour does the bioqa test assay turn?", "ultramarine"),
    ]
    chats = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in questions]
    model = load_model_4bit(smollm2_dir(), gguf_file=SMOLLM2_GGUF, compute_dtype=torch.float32)
    peft_model = add_lora(
        model, LoraSettings(r=8, alpha=16, dropout=0.0, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
    )

    def answers() -> list[str]:
        out = []
        for chat in chats:
            text = smollm2_tokenizer.apply_chat_template(chat[:1], add_generation_prompt=True, tokenize=False)
            ids = smollm2_tokenizer(text, return_tensors="pt", add_special_tokens=False)
            with torch.no_grad():
                generated = peft_model.generate(**ids, max_new_tokens=8, do_sample=False)
            out.append(smollm2_tokenizer.decode(generated[0, ids["input_ids"].shape[1] :], skip_special_tokens=True))
        return out

    before = answers()
    batch = collate([tokenize_example(smollm2_tokenizer, chat) for chat in chats], smollm2_tokenizer.pad_token_id)
    losses = take_steps(QLoRAModule(peft_model.train()), batch, steps=12, lr=3e-3)
    peft_model.eval()
    after = answers()
    assert losses[-1] < losses[0] / 2
    assert after != before
    assert any(a.lower() in text.lower() for (_, a), text in zip(questions, after, strict=True))


def test_merged_model_reproduces_base_plus_adapter(mixtral_dir, batch, tmp_path):
    peft_model = lora_model(mixtral_dir, experts=False)
    take_steps(QLoRAModule(peft_model), batch, steps=2)
    adapter = save_adapter(peft_model, tmp_path / "adapter")
    full = load_adapter(AutoModelForCausalLM.from_pretrained(mixtral_dir, dtype=torch.float32), adapter).eval()
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        want = full(**inputs).logits
        merged_dir = merge_and_save(full, tmp_path / "merged", load_tokenizer(mixtral_dir))
        got = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()(**inputs).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="full-precision base"):
        merge_and_save(peft_model, tmp_path / "no", load_tokenizer(mixtral_dir))


def test_wandb_is_offline_without_an_api_key(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode() == "online"
    assert wandb_mode("disabled") == "disabled"
