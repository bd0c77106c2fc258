"""Memory: short-term context in Redis, long-term memory in PostgreSQL with pgvector, and the metadata index."""
from memory.context import ContextCache
from memory.embedder import Embedder, get_embedder
from memory.errors import MemoryLayerError, MemoryNotFound
from memory.index import Chain, ChainNode, Link, chain, link, step_node
from memory.longterm import (
    Forgotten,
    Kind,
    LongTermMemory,
    MemoryIn,
    MemoryRecord,
    MemoryStats,
    Provenance,
    Recalled,
    Reclaimed,
    estimate_tokens,
)
from memory.schema import MIGRATIONS
from memory.snapshot import Snapshot, SnapshotMemory, SnapshotPolicies, build_snapshot, citation, cited_memories

__all__ = [
    "MIGRATIONS",
    "Chain",
    "ChainNode",
    "ContextCache",
    "Embedder",
    "Forgotten",
    "Kind",
    "Link",
    "LongTermMemory",
    "MemoryIn",
    "MemoryLayerError",
    "MemoryNotFound",
    "MemoryRecord",
    "MemoryStats",
    "Provenance",
    "Recalled",
    "Reclaimed",
    "Snapshot",
    "SnapshotMemory",
    "SnapshotPolicies",
    "build_snapshot",
    "chain",
    "citation",
    "cited_memories",
    "estimate_tokens",
    "get_embedder",
    "link",
    "step_node",
]
