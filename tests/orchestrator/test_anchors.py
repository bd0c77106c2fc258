"""The audit chain's anchors: the head signed outside the database, so a rewrite that recomputes every unkeyed
hash, a truncation below an anchor and a forged anchor line are all found; a check re-hashes only what is new."""
from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import SecretStr

from orchestrator import anchors, audit, words

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
# The checks' clock: a minute after the newest event appended, unless a test moves it (see `_append`).
NOW = [T0]


def _append(db, n: int, *, start: int = 0, at: datetime | None = None) -> None:
    with db.connection() as conn, conn.transaction():
        for k in range(start, start + n):
            when = at or T0 + timedelta(seconds=k)
            audit.append(conn, actor="tester", kind="test.event", payload={"n": k}, at=when)
            NOW[0] = when + timedelta(minutes=1)


def _anchor(db, book, *, now=T0 + timedelta(hours=1)) -> anchors.Anchoring:
    with db.connection() as conn:
        return anchors.anchor(conn, book, now=now)


def _verify(db, book, *, full: bool = False) -> anchors.AnchorReport:
    with db.connection() as conn:
        return anchors.verify(conn, book, full=full)


def _rewrite_consistently(database_url: str, event_id: int, payload: dict) -> None:
    """What the app's role (triggers dropped) or a superuser can do to an unkeyed chain: edit one event and
    recompute its hash and every hash after it, so the chain alone verifies from the first event."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("SET session_replication_role = replica")
        rows = conn.execute("SELECT * FROM audit_events ORDER BY id").fetchall()
        prev = audit.GENESIS
        for row in rows:
            body = payload if row["id"] == event_id else row["payload"]
            digest = audit.chain_hash(prev, audit.canonical(
                id=row["id"], at=row["at"], actor=row["actor"], kind=row["kind"], intent_id=row["intent_id"],
                run_id=row["run_id"], payload=body))
            conn.execute("UPDATE audit_events SET payload = %s, prev_hash = %s, hash = %s WHERE id = %s",
                         (Jsonb(body), prev, digest, row["id"]))
            prev = digest


def _as_superuser_without_triggers(database_url: str, sql: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(sql)


@pytest.fixture
def book(settings):
    NOW[0] = T0
    return anchors.book(settings)


def test_a_rewrite_with_every_hash_recomputed_is_found_by_the_anchor(db, database_url, book):
    """Proves defect 8's rewrite is detected: the unkeyed chain verifies from the first event after the edit,
    yet the anchor's signed hash of event #4 no longer matches, and the verdict names #4."""
    _append(db, 4)
    assert _anchor(db, book).anchor.event_id == 4
    _append(db, 2, start=4)
    _rewrite_consistently(database_url, 2, {"n": 1, "refund": "to mallory"})
    with db.connection() as conn:
        assert audit.verify(conn).ok  # the chain on its own is fooled
    report = _verify(db, book)
    assert not report.ok and report.rewritten_up_to == 4
    assert "events up to #4 were rewritten or removed after they were anchored" in words.chain_verdict(report)
    full = _verify(db, book, full=True)
    assert not full.ok and full.rewritten_up_to == 4
    # No anchor is written over the rewritten chain.
    assert not _anchor(db, book, now=T0 + timedelta(hours=2)).written
    assert len(book.path.read_text().splitlines()) == 1


def test_deleting_the_last_events_below_an_anchor_is_found(db, database_url, book):
    """Proves truncation is detected: the events from #3 on are deleted (a chain that still links up), and the
    anchor at #5 names the loss."""
    _append(db, 5)
    _anchor(db, book)
    _as_superuser_without_triggers(database_url, "DELETE FROM audit_events WHERE id >= 3")
    with db.connection() as conn:
        assert audit.verify(conn).ok
    report = _verify(db, book)
    assert not report.ok and report.rewritten_up_to == 5 and report.checked == 0


def test_a_forged_anchor_line_is_refused_and_reported(db, book):
    """Proves an anchor without this key's HMAC vouches for nothing: a forged line naming a later head is refused,
    reported by line number, and the check still starts from the newest anchor signed with the key."""
    _append(db, 3)
    _anchor(db, book)
    _append(db, 2, start=3)
    with db.connection() as conn:
        head = conn.execute("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1").fetchone()
    forged = anchors.sign(b"not the key" * 4, event_id=head["id"], head_hash=head["hash"], at=T0)
    with book.path.open("a") as out:
        out.write(forged.model_dump_json() + "\n")
    report = _verify(db, book)
    assert report.ok and not report.trusted
    assert [(r.line, r.reason) for r in report.refused] == [(2, anchors.Refusal.FORGED)]
    assert report.anchor.event_id == 3 and report.checked == 2
    assert "1 anchor line refused, not signed with this opsos's audit key" in words.chain_verdict(report)
    assert "line 2" in words.chain_verdict(report)


def test_a_check_rehashes_only_the_events_after_the_newest_anchor(db, book):
    """Proves defect 4's second half: with 40 events anchored and 3 new ones, the check re-hashes 3, not 43;
    the full check still re-hashes all of them."""
    _append(db, 40)
    _anchor(db, book)
    _append(db, 3, start=40)
    report = _verify(db, book)
    assert report.ok and report.anchor.event_id == 40 and report.checked == 3 and report.anchors_checked == 1
    full = _verify(db, book, full=True)
    assert full.ok and full.checked == 43


def test_the_anchor_job_signs_only_a_head_that_moved(db, book):
    """One anchor per new head: a second run with nothing new writes no line; after new events it signs the new
    head, and every line verifies under the key."""
    assert not _anchor(db, book).written  # no events yet: nothing to sign
    _append(db, 2)
    first = _anchor(db, book)
    again = _anchor(db, book)
    assert first.written and not again.written and again.anchor == first.anchor
    _append(db, 1, start=2)
    third = _anchor(db, book)
    assert third.written and third.anchor.event_id == 3 and third.report.checked == 1
    lines = book.path.read_text().splitlines()
    assert [json.loads(line)["event_id"] for line in lines] == [2, 3]
    found, refused = anchors.read(book)
    assert [a.event_id for a in found] == [2, 3] and refused == []


def test_the_key_file_is_made_once_readable_by_its_owner_only(settings):
    """The key the database never holds: made on first use as <data_dir>/audit.key with mode 0600, then reused."""
    first = anchors.book(settings)
    path = settings.data_dir / "audit.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert anchors.book(settings).key == first.key and len(first.key) == anchors.KEY_BYTES
    assert first.path == settings.data_dir / "audit-anchors.jsonl"
    assert repr(first.key) not in repr(first)


def test_opsos_audit_key_signs_instead_of_a_key_file(settings):
    settings.audit_key = SecretStr("k" * 40)
    assert anchors.book(settings).key == b"k" * 40
    assert not (settings.data_dir / "audit.key").exists()


def test_a_torn_last_line_stays_one_refused_line(db, book):
    """A crash mid-append leaves a line without its newline: the next anchor starts on a line of its own."""
    _append(db, 1)
    book.path.parent.mkdir(parents=True, exist_ok=True)
    book.path.write_text('{"event_id": 1, "ha')
    assert _anchor(db, book).written
    found, refused = anchors.read(book)
    assert [a.event_id for a in found] == [1]
    assert [(r.line, r.reason) for r in refused] == [(1, anchors.Refusal.UNREADABLE)]


def test_opsos_audit_verify_uses_the_anchors_and_full_rehashes_all(db, database_url, redis_url, settings,
                                                                   monkeypatch, capsys):
    from bot.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OPSOS_DATA_DIR", str(settings.data_dir))
    _append(db, 5, at=datetime.now(UTC))
    _anchor(db, anchors.book(settings), now=datetime.now(UTC))
    _append(db, 1, start=5, at=datetime.now(UTC))
    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert "anchored through event #5, 1 event since" in out and "Audit anchor: event #5" in out
    assert main(["audit", "verify", "--full"]) == 0
    assert "from the first event: 6 events, every link intact, 1 anchor matched" in capsys.readouterr().out
    _rewrite_consistently(database_url, 1, {"n": 100})
    assert main(["audit", "verify"]) == 1
    assert "events up to #5 were rewritten" in capsys.readouterr().out


def _later_with_the_anchor_file(db, book, restore: str | None) -> anchors.AnchorReport:
    _append(db, 3, start=6)
    if restore is None:
        book.path.unlink()
    else:
        book.path.write_text(restore)
    return _verify(db, book)


@pytest.mark.parametrize("what", ["deleted", "rolled back"])
def test_an_anchor_file_deleted_or_rolled_back_leaves_the_chain_not_trusted(db, book, what):
    """Proves the review's finding: the database marks each anchor written, so a file without the newest of them
    lost anchors; the links still verify, yet the chain is not trusted, the verdict says why and what to do, and
    the anchor job signs nothing over the gap until the operator accepts it."""
    _append(db, 3)
    _anchor(db, book)
    older = book.path.read_text()
    _append(db, 3, start=3)
    _anchor(db, book, now=NOW[0])
    report = _later_with_the_anchor_file(db, book, None if what == "deleted" else older)
    assert report.ok and not report.trusted
    assert report.unanchored_from == (1 if what == "deleted" else 4)
    said = words.chain_verdict(report)
    assert said.startswith(f"Chain NOT TRUSTED: no anchor covers the events from #{report.unanchored_from} on")
    assert "deleted or replaced with an older copy" in said and "opsos audit anchor --accept-gap" in said
    assert words.audit_alarm(report).title == "The audit log is no longer covered by its anchors"
    assert not _anchor(db, book, now=NOW[0]).written
    with db.connection() as conn:
        assert anchors.anchor(conn, book, now=NOW[0], accept_gap=True).written
    assert _verify(db, book).trusted


def test_events_never_anchored_because_no_scheduler_ran_are_trusted(db, book):
    """`opsos chat` alone runs no anchor job: events it wrote wait for one, however old, and nothing is wrong;
    the first anchor the scheduler writes covers them."""
    assert _verify(db, book).trusted  # no events at all
    _append(db, 3)
    report = _verify(db, book)
    assert report.trusted and report.unanchored_from is None
    assert words.chain_verdict(report) == "Chain verified: 3 events, every link intact (no anchor yet)."
    assert _anchor(db, book).written
    assert _verify(db, book).anchor.event_id == 3


def test_the_anchor_marks_are_append_only(db, book):
    """Review finding: deleting the marks would make a lost anchor file read as "never anchored"."""
    _append(db, 2)
    _anchor(db, book)
    for change in ("DELETE FROM audit_anchor_marks", "UPDATE audit_anchor_marks SET event_id = 0",
                   "TRUNCATE audit_anchor_marks"):
        with db.connection() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(change)
