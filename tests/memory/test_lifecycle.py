"""The pure parts of a memory's lifecycle: what a summary of some sources is, and how it links to them."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from memory.longterm.lifecycle import summary_links, summary_of
from memory.longterm.records import Kind, MemoryRecord, Provenance

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def source(id_: int) -> MemoryRecord:
    return MemoryRecord(id=id_, ref=None, refs=[], text=f"note {id_}", kind=Kind.CUSTOMER_INTERACTION,
                        subject="customer:ana", provenance={}, created_at=T0, last_used_at=None, refcount=0,
                        version=1, supersedes=None, current=True, forgotten_at=None, forgotten_by=None,
                        retention_until=None)


SOURCES = [source(4), source(9)]


@pytest.mark.parametrize(("provenance", "expected"), [
    pytest.param(None, {"source": "summary", "summarises": [4, 9]}, id="no_provenance"),
    pytest.param({"run_id": 12}, {"run_id": 12, "source": "summary", "summarises": [4, 9]}, id="a_mapping"),
    pytest.param(Provenance(source="upkeep", intent_id=3),
                 {"intent_id": 3, "source": "upkeep", "summarises": [4, 9]}, id="a_provenance_keeps_its_source"),
    pytest.param({"summarises": [1]}, {"source": "summary", "summarises": [4, 9]}, id="the_sources_are_not_negotiable"),
])
def test_summary_of(provenance: Any, expected: dict[str, Any]) -> None:
    item = summary_of("customer:ana", SOURCES, "Ana: two notes.", provenance=provenance, at=T0)
    assert item.provenance.model_dump(exclude_none=True) == expected
    assert (item.kind, item.ref, item.at, item.text) == (Kind.SUMMARY, "summary:customer:ana:9", T0, "Ana: two notes.")


def test_summary_links_point_at_every_source() -> None:
    assert summary_links(20, SOURCES) == [(("memory", "20"), ("memory", "4"), "summarises"),
                                          (("memory", "20"), ("memory", "9"), "summarises")]
