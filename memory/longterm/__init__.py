"""Long-term memory in PostgreSQL: write with merge and versioning, hybrid recall, citations and upkeep."""
from memory.errors import MemoryNotFound
from memory.longterm.facade import LongTermMemory
from memory.longterm.recall import ef_search_for
from memory.longterm.records import (
    Forgotten,
    Kind,
    MemoryIn,
    MemoryRecord,
    MemoryStats,
    Provenance,
    Recalled,
    Reclaimed,
    estimate_tokens,
)

__all__ = [
    "Forgotten",
    "Kind",
    "LongTermMemory",
    "MemoryIn",
    "MemoryNotFound",
    "MemoryRecord",
    "MemoryStats",
    "Provenance",
    "Recalled",
    "Reclaimed",
    "ef_search_for",
    "estimate_tokens",
]
