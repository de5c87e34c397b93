"""Padding in the paper's 10-shot training data before and after sequence packing (SmolLM2 tokenizer, CPU only).

Two sources, tokenised exactly as ``train.py`` does (chat template, completion-only labels, ``max_length``):

- ``chat_jsonl``: the paper's fine-tuning files ``fewshot/0[4-7]_QA_*_11B1-3-4_*.jsonl`` (``data.format=chat_jsonl``);
- ``golden_10shot``: BioASQ golden files 11B1, 11B3, 11B4 rendered by the PromptBuilder with ``prompt=10shot`` and
  the paper's shot pools (``data.format=golden``), one example per question and answer kind.

Before: padded batches of ``B`` examples (``collate``: every row padded to the batch's longest), in random order
and length-grouped (``LengthGroupedSampler``, the default). After: ``data.packing=true`` rows of at most
``pack_length`` tokens (first-fit decreasing), ``B`` rows per batch padded to the batch's longest row; also the
unused share of fixed ``pack_length`` rows (what a static-shape kernel would see).

    python benchmarks/packing_padding.py [--max-length 8192] [--batch-sizes 1 4 8 16]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from bioqa.models.embedded import SMOLLM2_GGUF, smollm2_dir
from bioqa.models.hf import load_tokenizer
from bioqa.prompts import PromptConfig
from bioqa.runs import package_versions, provenance, register_resolvers
from bioqa.training.data import (
    LengthGroupedSampler,
    TokenizedDataset,
    golden_examples,
    pack_lengths,
    padding_fraction,
    read_chat_jsonl,
)
from bioqa.training.recipe import prompt_builder

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
GOLDEN_TRAIN = ("11B1", "11B3", "11B4")


def batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def padded_rows(lengths: list[int], groups: list[list[int]]) -> list[tuple[int, int]]:
    """(width, tokens) of every row when each group is one batch padded to its longest member."""
    return [(max(lengths[i] for i in group), lengths[i]) for group in groups for i in group]


def measure(lengths: list[int], batch_sizes: list[int], pack_length: int, seed: int = 0) -> dict[str, Any]:
    tokens = sum(lengths)
    packs = pack_lengths(lengths, pack_length)
    pack_sizes = [sum(lengths[i] for i in pack) for pack in packs]
    result: dict[str, Any] = {
        "examples": len(lengths),
        "tokens": tokens,
        "mean_length": tokens / len(lengths),
        "max_length_seen": max(lengths),
        "packed_rows": len(packs),
        "examples_per_packed_row": len(lengths) / len(packs),
        "unused_share_of_fixed_pack_length_rows": 1 - tokens / (len(packs) * pack_length),
        "by_batch_size": {},
    }
    for size in batch_sizes:
        shuffled = list(range(len(lengths)))
        random.Random(seed).shuffle(shuffled)
        grouped = list(LengthGroupedSampler(lengths, size, seed))
        pack_order = list(range(len(packs)))
        random.Random(seed).shuffle(pack_order)
        packed = padded_rows(pack_sizes, batches(pack_order, size))
        result["by_batch_size"][str(size)] = {
            "padding_random_order": padding_fraction(padded_rows(lengths, batches(shuffled, size))),
            "padding_length_grouped": padding_fraction(padded_rows(lengths, batches(grouped, size))),
            "padding_packed": padding_fraction(packed),
            "steps_unpacked": -(-len(lengths) // size),
            "steps_packed": -(-len(packs) // size),
        }
    return result


def golden_prompt() -> tuple[PromptConfig, Path]:
    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["prompt=10shot", "model=smollm2"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return PromptConfig.from_dict(OmegaConf.to_container(cfg.prompt, resolve=True)), Path(cfg.paths.shared_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-length", type=int, default=8192, help="model.train.max_length (Mixtral recipe: 8192)")
    parser.add_argument("--pack-length", type=int, default=None, help="default: --max-length")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--out", type=Path, default=RESULTS / "packing_padding.json")
    args = parser.parse_args()
    pack_length = args.pack_length or args.max_length
    tokenizer = load_tokenizer(smollm2_dir(), SMOLLM2_GGUF)
    prompt, shared = golden_prompt()

    jsonl_files = sorted((shared / "fewshot").glob("0[4-7]_QA_*_11B1-3-4_*.jsonl"))
    golden_files = [shared / "golden" / f"{name}_golden.json" for name in GOLDEN_TRAIN]
    builder = prompt_builder(prompt, tokenizer, args.max_length, answer_tokens=256)
    sources = {
        "chat_jsonl": (jsonl_files, lambda: [e for f in jsonl_files for e in read_chat_jsonl(f)]),
        "golden_10shot": (golden_files, lambda: golden_examples(golden_files, builder)),
    }
    results = {}
    for name, (files, read) in sources.items():
        started = time.perf_counter()
        dataset = TokenizedDataset(read(), tokenizer, args.max_length)
        results[name] = {
            "files": [str(f.relative_to(shared)) for f in files],
            **measure(dataset.lengths, args.batch_sizes, pack_length),
            "seconds": time.perf_counter() - started,
        }

    print(f"\nPadding fraction (SmolLM2 tokenizer, max_length {args.max_length}, pack_length {pack_length})")
    print(f"{'source':<15}{'batch':>6}{'random':>9}{'grouped':>9}{'packed':>9}{'steps':>8}{'packed':>8}")
    for name, r in results.items():
        for size, b in r["by_batch_size"].items():
            print(
                f"{name:<15}{size:>6}{b['padding_random_order']:>9.3f}{b['padding_length_grouped']:>9.3f}"
                f"{b['padding_packed']:>9.3f}{b['steps_unpacked']:>8}{b['steps_packed']:>8}"
            )
        print(
            f"{name:<15} {r['examples']} examples, mean {r['mean_length']:.0f} tokens, "
            f"{r['examples_per_packed_row']:.1f} per packed row, "
            f"unused share of fixed {pack_length}-token rows {r['unused_share_of_fixed_pack_length_rows']:.3f}"
        )
    payload = {
        "benchmark": "packing_padding",
        "tokenizer": f"SmolLM2-135M-Instruct ({SMOLLM2_GGUF})",
        "max_length": args.max_length,
        "pack_length": pack_length,
        "definition": "padding fraction = sum over rows of (row width - example tokens) / sum of row widths; "
        "a batch's rows are padded to its longest row",
        "results": results,
        "provenance": provenance([*jsonl_files, *golden_files]),
        "packages": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
