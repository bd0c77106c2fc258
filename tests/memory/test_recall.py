"""The HNSW candidate list for the index's size, pure, and its periodic size check against a stand-in cursor."""
from __future__ import annotations

from typing import Any

import pytest

from memory.longterm.recall import INDEX_SIZE, IndexSizedEfSearch, ef_search_for


@pytest.mark.parametrize(("live", "ef_search"), [
    pytest.param(-1, 100, id="never_analysed"),
    pytest.param(0, 100, id="empty"),
    pytest.param(200_000, 100, id="measured_at_200k"),
    pytest.param(200_001, 200, id="just_past_200k"),
    pytest.param(400_000, 200, id="up_to_400k"),
    pytest.param(1_000_000, 325, id="measured_at_1m"),
    pytest.param(5_000_000, 400, id="beyond_what_was_measured"),
])
def test_ef_search_for(live: int, ef_search: int) -> None:
    assert ef_search_for(live) == ef_search


class SizeCursor:
    """Answers INDEX_SIZE with `row` and counts the questions."""

    def __init__(self, row: dict[str, Any] | None) -> None:
        self.row = row
        self.asked = 0

    def execute(self, query: str) -> SizeCursor:
        assert query == INDEX_SIZE
        self.asked += 1
        return self

    def fetchone(self) -> dict[str, Any] | None:
        return self.row


@pytest.mark.parametrize(("row", "ef_search"), [
    pytest.param({"reltuples": 300_000}, 200, id="sized_from_the_catalogue"),
    pytest.param({"reltuples": -1}, 100, id="never_analysed"),
    pytest.param({"reltuples": None}, 100, id="no_estimate"),
    pytest.param(None, 100, id="no_row"),
])
def test_index_sized_ef_search_reads_the_catalogue(row: dict[str, Any] | None, ef_search: int) -> None:
    assert IndexSizedEfSearch(clock=lambda: 0.0)(SizeCursor(row)) == ef_search  # type: ignore[arg-type]


@pytest.mark.parametrize(("seconds_later", "asked"), [
    pytest.param(1.0, 1, id="within_five_minutes_uses_the_last_check"),
    pytest.param(300.0, 1, id="at_five_minutes_still_the_last_check"),
    pytest.param(301.0, 2, id="past_five_minutes_checks_again"),
])
def test_index_sized_ef_search_rechecks_every_few_minutes(seconds_later: float, asked: int) -> None:
    now = [1000.0]
    sized = IndexSizedEfSearch(clock=lambda: now[0])
    cur = SizeCursor({"reltuples": 10})
    sized(cur)  # type: ignore[arg-type]
    cur.row = {"reltuples": 2_000_000}
    now[0] += seconds_later
    assert sized(cur) == (400 if asked == 2 else 100)  # type: ignore[arg-type]
    assert cur.asked == asked
