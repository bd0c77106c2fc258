"""The memory layer's tables: long-term memories with pgvector."""

MIGRATIONS: list[str] = [
    # 1: pgvector, which long-term memory and the router's index need.
    "CREATE EXTENSION IF NOT EXISTS vector",
]
