"""The tokenizer loader shared by every local model, tiny random models sized for a real tokenizer (tests,
demos, 4-bit checks), and the tiny tokenizer they use by default: quantisation and the hf backend both build on
these, so neither imports the other's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from bioqa.resources import demo_corpus_path, demo_golden_path

#: ChatML turns (``<|im_start|>role\ncontent<|im_end|>\n``) with no default system prompt.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'"
    " + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


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


def build_tiny_tokenizer(out_dir: str | Path, vocab_size: int = 2048) -> Path:
    """Train the tiny tokenizer (``bioqa/resources/tiny_tokenizer``) and save it to ``out_dir``: byte-level BPE
    learnt from bioqa's own demo corpus and batch (every string still encodes), the ChatML template, ``<|im_end|>``
    ending a turn. Its small vocabulary keeps tiny random models and their grammar compilation fast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([p.read_text(encoding="utf-8") for p in (demo_corpus_path(), demo_golden_path())], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
    )
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)
