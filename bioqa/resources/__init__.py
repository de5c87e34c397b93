"""Data shipped inside the package: a small demo batch and corpus written by the bioqa authors."""

from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent / "demo"


def demo_golden_path() -> Path:
    """The demo batch in the official BioASQ golden format (16 questions, all four types)."""
    return DEMO_DIR / "demo_golden.json"


def demo_corpus_path() -> Path:
    """The demo corpus: one ``{"pmid", "title", "abstract"}`` object per line (41 documents)."""
    return DEMO_DIR / "demo_corpus.jsonl"
