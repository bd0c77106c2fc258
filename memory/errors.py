"""The memory layer's errors: one root, a subclass per failure, each carrying what the caller needs."""
from __future__ import annotations


class MemoryLayerError(Exception):
    """Root of every error the memory layer raises on purpose (named apart from the builtin MemoryError)."""


class MemoryNotFound(MemoryLayerError, LookupError):
    """No live memory has this id (never written, reclaimed, or forgotten).

    Still a LookupError, as it was before the memory layer had a root, so existing handlers keep catching it.
    """

    def __init__(self, memory_id: int) -> None:
        super().__init__(f"memory {memory_id} not found")
        self.memory_id = memory_id
