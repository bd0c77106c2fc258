"""Long-term memory's records, pure: token estimates and rows read back as MemoryRecord."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from memory.longterm.records import Kind, estimate_tokens, to_record

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "tokens"), [
    pytest.param("", 1, id="empty_still_costs_a_token"),
    pytest.param("abcd", 1, id="four_characters"),
    pytest.param("abcde", 2, id="a_fifth_character_rounds_up"),
    pytest.param("x" * 400, 100, id="four_hundred_characters"),
])
def test_estimate_tokens(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


def _row(ref: str | None, provenance: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": 3, "ref": ref, "text": "t", "kind": "fact", "subject": "s", "provenance": provenance,
            "created_at": T0, "last_used_at": None, "refcount": 0, "version": 1, "supersedes": None,
            "current": True, "forgotten_at": None, "forgotten_by": None, "retention_until": None}


@pytest.mark.parametrize(("ref", "provenance", "refs"), [
    pytest.param("zd-1", {"refs": ["zd-1", "gm-9"]}, ["zd-1", "gm-9"], id="refs_from_the_provenance"),
    pytest.param("zd-1", {}, ["zd-1"], id="only_its_own_ref"),
    pytest.param(None, {}, [], id="no_ref_at_all"),
])
def test_to_record_refs(ref: str | None, provenance: dict[str, Any] | None, refs: list[str]) -> None:
    record = to_record(_row(ref, provenance), "merged")
    assert (record.refs, record.kind, record.outcome) == (refs, Kind.FACT, "merged")
