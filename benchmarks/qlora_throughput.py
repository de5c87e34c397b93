"""QLoRA training throughput, peak memory and 4-bit decode speed: bioqa vs plain transformers + PEFT + bitsandbytes.

A random-init Mixtral with the real layer shapes (hidden 4096, FFN 14336, 8 experts top-2, 32 q / 8 kv heads,
vocab 32000) and ``--layers`` decoder layers; batch 1, ``--seq`` tokens, LoRA r=16 on q/k/v/o, every frozen
weight NF4 (double quantisation, bf16 compute). Variants:

- ``bioqa``: :class:`bioqa.training.module.QLoRAModule` in a Lightning Trainer (bf16-mixed), experts through
  ``bioqa.models.moe`` (routed experts only, one at a time, no dequantised weight kept for backward);
- ``baseline``: a plain loop (autocast bf16, AdamW) over a transformers model whose linear layers are
  ``bnb.nn.Linear4bit`` (what ``BitsAndBytesConfig(load_in_4bit=True)`` builds) and whose fused experts are
  quantised with ``bitsandbytes.nn.parametrize.replace_parameter_4bit`` and run by ``grouped_mm``;
- ``*-nockpt``: the same without gradient checkpointing.

Full-model numbers are extrapolated linearly: time × 32 / layers; memory + (32 − layers) × (one layer's NF4
weights + its checkpointed input). Run ``--tiny`` on CPU for a smoke test (small shapes, fp32).

    python benchmarks/qlora_throughput.py [--layers 2] [--seq 4096] [--variants bioqa baseline ...] [--tiny]
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import platform
import re
import time
from pathlib import Path
from typing import Any

import bitsandbytes as bnb
import pytorch_lightning as pl
import torch
from bitsandbytes.nn.parametrize import replace_parameter_4bit
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import AutoModelForCausalLM, MixtralConfig

from bioqa.models.adapters import LoraSettings, add_lora
from bioqa.models.quantization import quantization_report, quantize_model_
from bioqa.runs import package_versions
from bioqa.training.module import QLoRAModule

RESULTS = Path(__file__).resolve().parent / "results"
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
FULL_LAYERS = 32


def mixtral_config(layers: int, tiny: bool) -> MixtralConfig:
    if tiny:
        sizes = dict(
            hidden_size=256, intermediate_size=512, num_attention_heads=8, num_key_value_heads=2, vocab_size=1024
        )
    else:
        sizes = dict(
            hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8, vocab_size=32000
        )
    return MixtralConfig(
        num_hidden_layers=layers, num_local_experts=8, num_experts_per_tok=2, max_position_embeddings=32768, **sizes
    )


def device_name(device: torch.device, tiny: bool) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"{slug}-tiny" if tiny else slug


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def memory_now(device: torch.device) -> float:
    return torch.cuda.memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def peak_memory(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def random_model(config: MixtralConfig, device: torch.device, dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    with torch.device(device):  # a copy of the config: variants set use_cache / experts implementation on theirs
        return AutoModelForCausalLM.from_config(copy.deepcopy(config), dtype=dtype)


def plain_quantize(model: nn.Module, compute_dtype: torch.dtype) -> nn.Module:
    """The off-the-shelf recipe: Linear4bit for linear layers, replace_parameter_4bit + grouped_mm for experts."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear and name != "lm_head":
                layer = bnb.nn.Linear4bit(
                    child.in_features,
                    child.out_features,
                    bias=False,
                    compute_dtype=compute_dtype,
                    compress_statistics=True,
                    quant_type="nf4",
                    device="meta",
                )
                layer.weight = bnb.nn.Params4bit(
                    child.weight.data, requires_grad=False, compress_statistics=True, quant_type="nf4", module=layer
                ).to(child.weight.device)
                setattr(module, name, layer)
        if hasattr(module, "gate_up_proj") and hasattr(module, "down_proj"):
            for name in ("gate_up_proj", "down_proj"):
                replace_parameter_4bit(module, name, compress_statistics=True, quant_type="nf4")
    model.config._experts_implementation = "grouped_mm"
    for module in model.modules():
        if hasattr(module, "config") and hasattr(module.config, "_experts_implementation"):
            module.config._experts_implementation = "grouped_mm"
    return model


def layer_bytes(model: nn.Module) -> float:
    """Stored bytes of decoder layer 0's weights (NF4 + statistics + bf16 norms/router)."""
    report = quantization_report(model)
    return sum(r["numel"] * r["bytes_per_param"] for n, r in report.items() if ".layers.0." in n)


class StepTimer(pl.Callback):
    """Wall time of each optimizer step (forward, backward, update), device-synchronised."""

    def __init__(self, device: torch.device):
        self.device, self.times, self._start = device, [], 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        sync(self.device)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        sync(self.device)
        self.times.append(time.perf_counter() - self._start)


class RandomTokens(torch.utils.data.Dataset):
    def __init__(self, n: int, seq: int, vocab: int):
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, vocab, (n, seq), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.ids[i]}


def train_bioqa(model, args, device, checkpointing: bool) -> list[float]:
    peft_model = add_lora(
        model, LoraSettings(r=args.lora_r, alpha=2 * args.lora_r, dropout=0.0, target_modules=ATTENTION)
    )
    module = QLoRAModule(
        peft_model, lr=1e-4, warmup_ratio=0.0, schedule="constant", gradient_checkpointing=checkpointing
    )
    timer = StepTimer(device)
    trainer = pl.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision="bf16-mixed" if device.type == "cuda" else "32-true",
        max_steps=args.warmup + args.steps,
        callbacks=[timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    data = torch.utils.data.DataLoader(
        RandomTokens(args.warmup + args.steps, args.seq, model.config.vocab_size), batch_size=1
    )
    trainer.fit(module, train_dataloaders=data)
    return timer.times[args.warmup :]


def train_baseline(model, args, device, checkpointing: bool) -> list[float]:
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0, target_modules=ATTENTION, task_type="CAUSAL_LM"
        ),
    )
    peft_model.train()
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4)
    data = RandomTokens(args.warmup + args.steps, args.seq, model.config.vocab_size)
    times = []
    for i in range(len(data)):
        batch = {k: v[None].to(device) for k, v in data[i].items()}
        sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = peft_model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        times.append(time.perf_counter() - start)
    return times[args.warmup :]


def decode_speed(model: nn.Module, device: torch.device, tokens: int, vocab: int) -> float:
    model.eval()
    prompt = torch.randint(0, vocab, (1, 32), generator=torch.Generator().manual_seed(1)).to(device)
    kwargs = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        model.generate(prompt, max_new_tokens=4, min_new_tokens=4, **kwargs)  # warm-up
        sync(device)
        start = time.perf_counter()
        model.generate(prompt, max_new_tokens=tokens, min_new_tokens=tokens, **kwargs)
        sync(device)
    return tokens / (time.perf_counter() - start)


def run_variant(name: str, config: MixtralConfig, args, device, dtype) -> dict[str, Any]:
    """Build the random model afresh (same seed, same weights), quantise it in place, decode, then train."""
    reset_peak(device)
    model = random_model(config, device, dtype)
    if name.startswith("bioqa"):
        quantize_model_(model, compute_dtype=dtype)
    else:
        plain_quantize(model, dtype)
    reset_peak(device)
    resident = memory_now(device)
    per_layer = layer_bytes(model) / 2**30
    decode = decode_speed(model, device, args.decode_tokens, model.config.vocab_size) if args.decode_tokens else None
    reset_peak(device)
    checkpointing = not name.endswith("-nockpt")
    train = train_bioqa if name.startswith("bioqa") else train_baseline
    times = train(model, args, device, checkpointing)
    step = sorted(times)[len(times) // 2]
    peak = peak_memory(device)
    saved_input = args.seq * model.config.hidden_size * 2 / 2**30 if checkpointing else float("nan")
    result = {
        "variant": name,
        "gradient_checkpointing": checkpointing,
        "step_s_median": step,
        "step_s_all": times,
        "tokens_per_s": args.seq / step,
        "tokens_per_s_32_layers": args.seq / (step * FULL_LAYERS / args.layers),
        "model_memory_gib": resident,
        "peak_memory_gib": peak,
        "layer_weights_gib": per_layer,
        "peak_memory_32_layers_gib": peak + (FULL_LAYERS - args.layers) * (per_layer + (saved_input or 0.0))
        if checkpointing
        else None,
        "decode_tokens_per_s": decode,
    }
    del model
    reset_peak(device)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seq", type=int, default=None, help="tokens per step (default 4096; 256 with --tiny)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--variants", nargs="+", default=["bioqa", "baseline", "bioqa-nockpt", "baseline-nockpt"])
    parser.add_argument("--tiny", action="store_true", help="small shapes (CPU smoke test)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.seq = args.seq or (256 if args.tiny else 4096)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = mixtral_config(args.layers, args.tiny)
    rows = [run_variant(name, config, args, device, dtype) for name in args.variants]
    baseline = next((r for r in rows if r["variant"] == "baseline"), None)
    print(
        f"\nMixtral shapes {'(tiny)' if args.tiny else ''}: {args.layers} layers, seq {args.seq}, batch 1, "
        f"LoRA r={args.lora_r} on attention, device {device_name(device, args.tiny)}"
    )
    header = (
        f"{'variant':<18}{'step s':>9}{'tok/s':>10}{'tok/s@32L':>11}{'peak GiB':>10}{'peak@32L':>10}"
        f"{'decode tok/s':>14}{'vs baseline':>13}"
    )
    print(header)
    for r in rows:
        speedup = baseline["step_s_median"] / r["step_s_median"] if baseline else float("nan")
        r["speedup_vs_baseline"] = speedup
        peak32 = r["peak_memory_32_layers_gib"]
        print(
            f"{r['variant']:<18}{r['step_s_median']:>9.3f}{r['tokens_per_s']:>10.0f}"
            f"{r['tokens_per_s_32_layers']:>11.0f}{r['peak_memory_gib']:>10.2f}"
            f"{(peak32 if peak32 is not None else float('nan')):>10.2f}{(r['decode_tokens_per_s'] or 0):>14.1f}"
            f"{speedup:>13.2f}"
        )
    out = args.out or RESULTS / f"qlora_throughput_{device_name(device, args.tiny)}.json"
    payload = {
        "benchmark": "qlora_throughput",
        "device": device_name(device, args.tiny),
        "tiny": args.tiny,
        "config": {
            "layers": args.layers,
            "seq": args.seq,
            "batch": 1,
            "lora_r": args.lora_r,
            "hidden": config.hidden_size,
            "ffn": config.intermediate_size,
            "experts": 8,
            "top_k": 2,
            "heads": config.num_attention_heads,
            "kv_heads": config.num_key_value_heads,
            "vocab": config.vocab_size,
            "compute_dtype": str(dtype),
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": torch.get_num_threads(),
        },
        "extrapolation": "tokens/s@32 = seq / (step_s * 32 / layers); peak@32 = peak + (32 - layers) * "
        "(layer NF4 weights + checkpointed layer input)",
        "results": rows,
        "packages": package_versions(),
        "platform": platform.platform(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
