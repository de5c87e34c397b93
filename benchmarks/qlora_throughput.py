"""QLoRA training throughput, peak memory, prefill and 4-bit decode speed: bioqa's levers vs the off-the-shelf recipe.

ONE time-boxed call runs every variant on a random-init Mixtral with the real layer shapes (hidden 4096, FFN 14336,
8 experts top-2, 32 q / 8 kv heads, vocab 32000) and ``--layers`` decoder layers (default 2); batch 1, ``--seq``
tokens (default 4096), LoRA r=16 on q/k/v/o, every frozen weight NF4 (double quantisation, bf16 compute on GPU).
All variants train in the same plain loop (autocast bf16 on CUDA, AdamW), so only the model differs:

- ``baseline``: what a user assembles from transformers + PEFT + bitsandbytes: ``bnb.nn.Linear4bit`` linear layers,
  fused experts quantised by ``bitsandbytes.nn.parametrize.replace_parameter_4bit`` and run by transformers'
  ``grouped_mm`` experts implementation;
- ``bioqa-routed``: bioqa's routed NF4 experts (one expert at a time through ``bnb.matmul_4bit``);
- ``bioqa-grouped``: each fused expert weight dequantised once per pass into a reusable buffer + ``grouped_mm``;
- ``bioqa-auto``: grouped from 64 tokens, routed below (decoding);
- ``+packed``: the row holds 4 examples of seq/4 tokens (position_ids restart, block-diagonal attention);
- ``+liger``: Liger-Kernel RMSNorm, RoPE, fused linear cross-entropy (CUDA only: skipped, not timed, on CPU);
- checkpointing ``all`` (default), ``none`` (``-nockpt``) or ``auto`` (the planner of bioqa.training.memory for
  ``--memory-budget-gb``, default: the GPU's memory); the planner's estimate is recorded beside the measured peak.

Decode (``bioqa-*`` and ``baseline``): prefill tokens/s over a ``--prompt``-token prompt (default 1024) and decode
tokens/s for ``--decode-tokens`` new tokens at batch 1 and 8. Full-model numbers are extrapolated linearly:
time × 32 / layers; memory + (32 − layers) × (one layer's NF4 weights + its checkpointed input).
Variants left when ``--time-budget-s`` is spent are recorded as skipped. ``--tiny``: small shapes, fp32, CPU.

    python benchmarks/qlora_throughput.py [--layers 2] [--seq 4096] [--variants ...] [--tiny] [--time-budget-s 420]
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bitsandbytes as bnb
import torch
from bitsandbytes.nn.parametrize import replace_parameter_4bit
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import AutoModelForCausalLM, MixtralConfig

from bioqa.models.adapters import LoraSettings, add_lora
from bioqa.models.quantization import quantization_report, quantize_model_
from bioqa.runs import package_versions
from bioqa.training.kernels import apply_liger
from bioqa.training.memory import ModelShape, apply_checkpointing, peak_gb, plan_checkpointing

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


@dataclass(frozen=True)
class Variant:
    quant: str  # "baseline" (replace_parameter_4bit + grouped_mm) or "bioqa"
    experts: str = "routed"  # bioqa's experts forward: routed | grouped | auto
    checkpointing: str = "all"  # all | none | auto
    packed: bool = False
    liger: bool = False
    decode: bool = False


VARIANTS = {
    "baseline": Variant("baseline", decode=True),
    "baseline-nockpt": Variant("baseline", checkpointing="none"),
    "bioqa-routed": Variant("bioqa", "routed", decode=True),
    "bioqa-grouped": Variant("bioqa", "grouped", decode=True),
    "bioqa-auto": Variant("bioqa", "auto", decode=True),
    "bioqa-grouped-nockpt": Variant("bioqa", "grouped", checkpointing="none"),
    "bioqa-grouped-ckptauto": Variant("bioqa", "grouped", checkpointing="auto"),
    "bioqa-grouped-packed": Variant("bioqa", "grouped", packed=True),
    "bioqa-grouped-liger": Variant("bioqa", "grouped", liger=True),
    "bioqa-grouped-packed-liger-ckptauto": Variant("bioqa", "grouped", "auto", packed=True, liger=True),
}


def token_batch(args, vocab: int, device: torch.device, step: int, packed: bool) -> dict[str, torch.Tensor]:
    ids = torch.randint(0, vocab, (1, args.seq), generator=torch.Generator().manual_seed(step)).to(device)
    batch = {"input_ids": ids, "labels": ids}
    if packed:  # 4 examples per row: positions restart, no attention_mask (block-diagonal attention)
        part = args.seq // 4
        batch["position_ids"] = (torch.arange(args.seq, device=device) % part)[None]
    else:
        batch["attention_mask"] = torch.ones_like(ids)
    return batch


def train_steps(model: nn.Module, args, device: torch.device, packed: bool) -> list[float]:
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for step in range(args.warmup + args.steps):
        batch = token_batch(args, model.config.vocab_size, device, step, packed)
        sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(**batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        times.append(time.perf_counter() - start)
    return times[args.warmup :]


def decode_speed(model: nn.Module, device: torch.device, args, batch: int) -> dict[str, float]:
    """Prefill tokens/s (one forward over the prompt) and decode tokens/s (generation minus its prefill)."""
    model.eval()
    prompt = torch.randint(0, model.config.vocab_size, (batch, args.prompt), generator=torch.Generator().manual_seed(1))
    prompt = prompt.to(device)
    kwargs = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        model.generate(prompt[:, :16], max_new_tokens=2, min_new_tokens=2, **kwargs)  # warm-up
        sync(device)
        start = time.perf_counter()
        model(prompt, use_cache=True)
        sync(device)
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        model.generate(prompt, max_new_tokens=args.decode_tokens, min_new_tokens=args.decode_tokens, **kwargs)
        sync(device)
        total = time.perf_counter() - start
    return {
        f"prefill_tokens_per_s_bs{batch}": batch * args.prompt / prefill,
        f"decode_tokens_per_s_bs{batch}": batch * args.decode_tokens / max(total - prefill, 1e-9),
    }


def build(variant: Variant, config: MixtralConfig, args, device, dtype) -> tuple[nn.Module, dict[str, Any]]:
    """The random model (same seed, same weights for every variant), quantised, with LoRA and checkpointing."""
    notes: dict[str, Any] = {}
    model = random_model(config, device, dtype)
    if variant.quant == "baseline":
        plain_quantize(model, dtype)
    else:
        quantize_model_(model, compute_dtype=dtype, experts_forward=variant.experts)
    if variant.liger:
        notes["liger"] = apply_liger(model)
    layers = list(range(config.num_hidden_layers))
    if variant.checkpointing == "auto":
        plan = plan_checkpointing(
            ModelShape.from_config(config),
            args.seq,
            args.memory_budget_gb,
            lora_r=args.lora_r,
            dtype_bytes=dtype.itemsize,
            experts_forward=variant.experts,
            overhead_gb=args.overhead_gb,
        )
        layers, notes["checkpoint_plan"] = plan.layers, plan.to_json()
    elif variant.checkpointing == "none":
        layers = []
    lora = LoraSettings(r=args.lora_r, alpha=2 * args.lora_r, dropout=0.0, target_modules=ATTENTION)
    if variant.quant == "baseline":
        model = get_peft_model(
            model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, target_modules=ATTENTION, task_type="CAUSAL_LM")
        )
    else:
        model = add_lora(model, lora)
    notes["checkpointed_layers"] = apply_checkpointing(model, layers)
    return model, notes


def estimate(config: MixtralConfig, args, dtype: torch.dtype, variant: Variant, layers: int) -> float:
    """The planner's peak estimate (GiB) for this run, to set beside the measured peak."""
    shape = ModelShape.from_config(config)
    plan = plan_checkpointing(
        shape,
        args.seq,
        1e9,
        lora_r=args.lora_r,
        dtype_bytes=dtype.itemsize,
        experts_forward=variant.experts if variant.quant == "bioqa" else "grouped",
        overhead_gb=args.overhead_gb,
    )
    return round(peak_gb(plan.items_gb, shape.layers, layers), 3)


def run_variant(name: str, config: MixtralConfig, args, device, dtype) -> dict[str, Any]:
    variant = VARIANTS[name]
    reset_peak(device)
    model, notes = build(variant, config, args, device, dtype)
    result: dict[str, Any] = {"variant": name, **asdict(variant), **notes}
    if variant.liger and not str(notes.get("liger", "")).startswith("applied"):
        result["skipped"] = notes["liger"]
        return result
    reset_peak(device)
    resident = memory_now(device)
    per_layer = layer_bytes(model) / 2**30
    times = train_steps(model, args, device, variant.packed)
    peak = peak_memory(device)
    step = sorted(times)[len(times) // 2]
    checkpointed = len(notes["checkpointed_layers"])
    saved_input = args.seq * config.hidden_size * dtype.itemsize / 2**30
    result.update(
        step_s_median=step,
        step_s_all=times,
        tokens_per_s=args.seq / step,
        tokens_per_s_32_layers=args.seq / (step * FULL_LAYERS / args.layers),
        model_memory_gib=resident,
        peak_memory_gib=peak,
        planner_estimate_gib=estimate(config, args, dtype, variant, checkpointed),
        layer_weights_gib=per_layer,
        peak_memory_32_layers_gib=peak + (FULL_LAYERS - args.layers) * (per_layer + saved_input)
        if checkpointed == args.layers
        else None,
    )
    if variant.decode and args.decode_tokens:
        for batch in (1, 8):
            result.update(decode_speed(model, device, args, batch))
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
    parser.add_argument("--prompt", type=int, default=None, help="decode prompt tokens (default 1024; 64 with --tiny)")
    parser.add_argument("--decode-tokens", type=int, default=None, help="new tokens (default 32; 8 with --tiny)")
    parser.add_argument("--memory-budget-gb", type=float, default=None, help="for ckptauto (default: GPU memory)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--time-budget-s", type=float, default=420, help="skip the variants left after this")
    parser.add_argument("--tiny", action="store_true", help="small shapes (CPU smoke test)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.seq = args.seq or (256 if args.tiny else 4096)
    args.prompt = args.prompt or (64 if args.tiny else 1024)
    args.decode_tokens = args.decode_tokens if args.decode_tokens is not None else (8 if args.tiny else 32)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.memory_budget_gb is None:
        args.memory_budget_gb = (
            torch.cuda.get_device_properties(device).total_memory / 2**30 if device.type == "cuda" else 0.02
        )
    args.overhead_gb = 1.0 if device.type == "cuda" else 0.0  # the planner's CUDA context + allocator allowance
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = mixtral_config(args.layers, args.tiny)
    started, rows, load_before = time.perf_counter(), [], os.getloadavg()
    for name in args.variants:
        if time.perf_counter() - started > args.time_budget_s:
            rows.append({"variant": name, "skipped": f"skipped: time budget of {args.time_budget_s:.0f} s spent"})
            continue
        try:
            rows.append(run_variant(name, config, args, device, dtype))
        except torch.OutOfMemoryError as error:
            rows.append({"variant": name, "skipped": f"skipped: out of memory: {str(error).splitlines()[0]}"})
            reset_peak(device)
    baseline = next((r for r in rows if r["variant"] == "baseline" and "step_s_median" in r), None)
    print(
        f"\nMixtral shapes {'(tiny)' if args.tiny else ''}: {args.layers} layers, seq {args.seq}, batch 1, "
        f"LoRA r={args.lora_r} on attention, device {device_name(device, args.tiny)}"
    )
    print(
        f"{'variant':<36}{'ckpt':>5}{'step s':>9}{'tok/s':>9}{'tok/s@32L':>10}{'peak GiB':>9}{'est GiB':>8}"
        f"{'vs base':>8}{'prefill':>9}{'dec bs1':>8}{'dec bs8':>8}"
    )
    nan = float("nan")
    for r in rows:
        if "step_s_median" not in r:
            print(f"{r['variant']:<36} {r['skipped']}")
            continue
        r["speedup_vs_baseline"] = baseline["step_s_median"] / r["step_s_median"] if baseline else None
        print(
            f"{r['variant']:<36}{len(r['checkpointed_layers']):>5}{r['step_s_median']:>9.3f}{r['tokens_per_s']:>9.0f}"
            f"{r['tokens_per_s_32_layers']:>10.0f}{r['peak_memory_gib']:>9.2f}{r['planner_estimate_gib']:>8.2f}"
            f"{(r['speedup_vs_baseline'] or nan):>8.2f}{r.get('prefill_tokens_per_s_bs1', nan):>9.0f}"
            f"{r.get('decode_tokens_per_s_bs1', nan):>8.1f}{r.get('decode_tokens_per_s_bs8', nan):>8.1f}"
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
            "prompt_tokens": args.prompt,
            "decode_tokens": args.decode_tokens,
            "memory_budget_gb": args.memory_budget_gb,
            "threads": torch.get_num_threads(),
        },
        "extrapolation": "tokens/s@32 = seq / (step_s * 32 / layers); peak@32 = peak + (32 - layers) * "
        "(layer NF4 weights + checkpointed layer input), only when every layer is checkpointed",
        "wall_s": time.perf_counter() - started,
        "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg(), "cpus": os.cpu_count()},
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
