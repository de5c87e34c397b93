"""Model backends behind one interface (``Backend``), plus the SQLite completion cache.

Backends (``bioqa.models.hf.HFBackend``, ``bioqa.models.litellm_backend.LiteLLMBackend``) are imported from their
modules (or built from ``conf/model/*.yaml`` with :func:`build_backend`) so that importing this package stays light.
"""

from bioqa.models.base import Backend, ChatRequest, Completion, GenerationParams, Message
from bioqa.models.cache import CachedBackend, CompletionCache
from bioqa.models.registry import build_backend

__all__ = [
    "Backend",
    "CachedBackend",
    "ChatRequest",
    "Completion",
    "CompletionCache",
    "GenerationParams",
    "Message",
    "build_backend",
]
