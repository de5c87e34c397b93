"""bioqa never fetches code from a model hub at run time.

bitsandbytes (>= 0.49), on CPUs with AVX512-BF16, asks the ``kernels`` package at import time for a CPU matmul kernel
published on the Hugging Face Hub (``kernels-community/quantization-bitsandbytes``): a download of executable code on
a networked machine, a warning line on every run everywhere else (offline, untrusted publisher, no network). Importing
bioqa installs an import hook that loads that one bitsandbytes module with ``kernels`` hidden, so bitsandbytes takes
its own built-in CPU kernels (as it does on every other CPU) and says nothing about it. ``kernels`` itself, and every
other use of it (transformers' ``use_kernels``), are untouched.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
from types import ModuleType

#: The module whose import runs the probe.
PROBING_MODULE = "bitsandbytes.backends.cpu.ops"


class _WithoutHubKernels(importlib.abc.Loader):
    """Runs a module with ``import kernels`` failing, and without the warning bitsandbytes logs when it fails."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        saved = sys.modules.get("kernels")
        sys.modules["kernels"] = None  # type: ignore[assignment]  # `from kernels import ...` raises ImportError
        quiet = _DropProbeWarning()
        logging.getLogger(PROBING_MODULE).addFilter(quiet)
        try:
            self.loader.exec_module(module)
        finally:
            logging.getLogger(PROBING_MODULE).removeFilter(quiet)
            if saved is None:
                sys.modules.pop("kernels", None)
            else:
                sys.modules["kernels"] = saved


class _DropProbeWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "gemm_4bit_forward from kernels-community" not in str(record.msg)


class _HubKernelProbeFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path, target=None) -> importlib.machinery.ModuleSpec | None:
        if fullname != PROBING_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _WithoutHubKernels(spec.loader)
        return spec


def disable_hub_kernel_probe() -> None:
    """Install the import hook (once); effective for bitsandbytes imported after it."""
    if not any(isinstance(finder, _HubKernelProbeFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _HubKernelProbeFinder())
