"""Memory: short-term context in Redis, long-term memory in PostgreSQL with pgvector."""
from memory.context import ContextCache
from memory.schema import MIGRATIONS

__all__ = ["MIGRATIONS", "ContextCache"]
