"""Model backends behind one interface (``Backend``), plus the SQLite completion cache."""

from bioqa.models.base import Backend, ChatRequest, Completion, GenerationParams, Message

__all__ = ["Backend", "ChatRequest", "Completion", "GenerationParams", "Message"]
