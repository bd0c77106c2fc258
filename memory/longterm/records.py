"""Long-term memory's records: the kinds, their retention, the pydantic models in and out, and token estimates."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DIMENSIONS = 384


class Kind(StrEnum):
    CUSTOMER_INTERACTION = "customer_interaction"
    DECISION = "decision"
    POLICY = "policy"
    OUTCOME = "outcome"
    SUMMARY = "summary"
    FACT = "fact"


# How long each kind is kept before reclamation may remove it (if nothing references it).
# Interactions and outcomes age out; decisions, policies, facts and summaries stay until forgotten.
DEFAULT_RETENTION: dict[Kind, timedelta | None] = {
    Kind.CUSTOMER_INTERACTION: timedelta(days=365),
    Kind.OUTCOME: timedelta(days=365),
    Kind.DECISION: None,
    Kind.POLICY: None,
    Kind.SUMMARY: None,
    Kind.FACT: None,
}


class Provenance(BaseModel):
    """Where a memory came from; extra keys are kept as given."""

    model_config = ConfigDict(extra="allow")
    intent_id: int | None = None
    run_id: int | None = None
    audit_event_id: int | None = None
    source: str | None = None


class MemoryIn(BaseModel):
    text: str = Field(min_length=1)
    kind: Kind
    subject: str = Field(min_length=1)
    provenance: Provenance = Field(default_factory=Provenance)
    ref: str | None = None
    at: datetime | None = None
    retention_until: datetime | None = None


WriteOutcome = Literal["inserted", "merged", "versioned"]


class MemoryRecord(BaseModel):
    id: int
    ref: str | None
    # Every caller id this memory answers for: its own and those of near-duplicates merged into it.
    refs: list[str]
    text: str
    kind: Kind
    subject: str
    provenance: dict[str, Any]
    created_at: datetime
    last_used_at: datetime | None
    refcount: int
    version: int
    supersedes: int | None
    current: bool
    forgotten_at: datetime | None
    forgotten_by: str | None
    retention_until: datetime | None
    # Set by remember(): what the write did.
    outcome: WriteOutcome | None = None


class Recalled(BaseModel):
    id: int
    ref: str | None
    refs: list[str]
    text: str
    kind: Kind
    subject: str
    # Reciprocal-rank-fusion score: higher is better; comparable within one recall only.
    score: float
    similarity: float | None
    vector_rank: int | None
    text_rank: int | None
    source: str | None
    provenance: dict[str, Any]
    created_at: datetime
    version: int
    current: bool


class Forgotten(BaseModel):
    """What forget() tombstoned: a digest of the text, never the text, so the audit log cannot leak it."""

    id: int
    ref: str | None
    subject: str
    kind: Kind
    version: int
    text_sha256: str
    forgotten_at: datetime
    forgotten_by: str


class Reclaimed(BaseModel):
    id: int
    ref: str | None
    subject: str
    kind: Kind
    version: int
    created_at: datetime
    retention_until: datetime


class MemoryStats(BaseModel):
    by_kind: dict[str, int]
    current: int
    superseded: int
    tombstoned: int
    total: int
    bytes_on_disk: int
    next_reclamation: list[Reclaimed]


def estimate_tokens(text: str) -> int:
    """A model-free token estimate (~4 characters a token for English), good enough for budgets."""
    return max(1, (len(text) + 3) // 4)


def to_record(row: Mapping[str, Any], outcome: WriteOutcome | None = None) -> MemoryRecord:
    """A `memories` row as a MemoryRecord; `refs` comes from the provenance, or the row's own ref."""
    prov = dict(row["provenance"] or {})
    refs = list(prov.get("refs") or ([row["ref"]] if row["ref"] else []))
    return MemoryRecord(**{k: row[k] for k in MemoryRecord.model_fields if k in row and k != "refs"},
                        refs=refs, outcome=outcome)
