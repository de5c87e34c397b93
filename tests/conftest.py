"""Shared fixtures: the BioASQ data beside the checkout (tests using it skip cleanly when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BIOQA_SHARED", ROOT.parent / "shared" / "bioasq"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared/bioasq`` (golden/, fewshot/, oracle/, corpus/); skips the test when absent."""
    if not (SHARED / "golden").is_dir():
        pytest.skip(f"BioASQ shared data not found at {SHARED}")
    return SHARED
