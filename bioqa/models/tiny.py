"""The tokenizer loader shared by every local model, and tiny random models sized for a real tokenizer (tests,
demos, 4-bit checks): quantisation and the hf backend both build on these, so neither imports the other's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase


def load_tokenizer(model_path: str | Path, gguf_file: str | None = None, **kwargs: Any) -> PreTrainedTokenizerBase:
    """The tokenizer of a model directory or of a GGUF file inside it; pads on the left for batched generation."""
    tokenizer = AutoTokenizer.from_pretrained(str(model_path), gguf_file=gguf_file, **kwargs)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def random_model(
    tokenizer: PreTrainedTokenizerBase,
    architecture: str = "llama",
    seed: int = 0,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    **config_overrides: Any,
) -> PreTrainedModel:
    """A tiny randomly initialised causal LM sized for ``tokenizer`` (reproducible for a given seed).

    ``architecture`` is any transformers ``model_type`` ("llama", "mixtral", ...); ``config_overrides`` go to
    its config (e.g. ``num_local_experts=4`` for mixtral)."""
    settings: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": True,
    }
    config = AutoConfig.for_model(architecture, **{**settings, **config_overrides})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config)


def save_random_model(
    out_dir: str | Path,
    tokenizer_path: str | Path,
    tokenizer_gguf_file: str | None = None,
    architecture: str = "llama",
    seed: int = 0,
    **config: Any,
) -> Path:
    """Write a tiny random model plus the given tokenizer to ``out_dir`` (a normal transformers model dir)."""
    tokenizer = load_tokenizer(tokenizer_path, tokenizer_gguf_file)
    model = random_model(tokenizer, architecture, seed, **config)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
