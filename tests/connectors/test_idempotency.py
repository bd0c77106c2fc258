"""Exclusive claims of outside actions: one attempt acts on a key at a time, until its claim runs out."""
import pytest

from connectors import ActionClaims, ActionEvent, ActionInProgress, ClaimTakenOver, fenced
from connectors.idempotency import lookup
from tests.concurrency import at_once

REQUEST = {"to": "ana@example.com"}


class Held:
    """A fence that is always held: one run lock's hold, as the engine gives it."""

    owner = "run:1:hold-a"

    def check(self) -> None:
        return None


def _claim(db, claims: ActionClaims, key: str = "run:1:send:ana"):
    with db.connection() as conn, conn.transaction():
        return claims.claim(conn, key=key, connector="email", action="send", request=REQUEST)


def _finish(db, claims: ActionClaims, key: str = "run:1:send:ana") -> None:
    with db.connection() as conn, conn.transaction():
        claims.finish(conn, key=key, result={"sent": True})


def test_two_attempts_at_one_key_at_once_one_acts_and_the_other_is_told_it_is_in_progress(db):
    """Before, a pending key meant "act" to every attempt: two workers holding one run both sent the email."""
    claims = ActionClaims(seconds=300)
    outcomes = at_once([lambda: _claim(db, claims), lambda: _claim(db, claims)], expect=(ActionInProgress,))
    acting = [o for o in outcomes if not isinstance(o, ActionInProgress)]
    refused = [o for o in outcomes if isinstance(o, ActionInProgress)]
    assert len(acting) == 1 and acting[0].done is None
    assert len(refused) == 1 and refused[0].key == "run:1:send:ana"
    assert 0 < refused[0].retry_after <= 300


def test_an_expired_claim_is_taken_over_and_counted_as_a_new_attempt(db):
    """A claim whose attempt died (or lost its run) is taken over once it has run out, on the database's clock."""
    first = _claim(db, ActionClaims(seconds=0))
    again = _claim(db, ActionClaims(seconds=300))
    assert again.done is None and again.owner != first.owner
    assert again.record.attempts == 2
    with pytest.raises(ActionInProgress):
        _claim(db, ActionClaims(seconds=300))


def test_a_finished_key_returns_its_record_instead_of_a_claim(db):
    claims = ActionClaims(seconds=300)
    _claim(db, claims)
    _finish(db, claims)
    repeat = _claim(db, claims)
    assert repeat.done is not None and repeat.done.state == "done" and repeat.done.result == {"sent": True}


def test_the_same_hold_may_claim_its_own_pending_key_again(db):
    """A retry within one hold of the run (a declined charge tried again) is its own claim, not another's."""
    claims = ActionClaims(seconds=300)
    with fenced(Held()):
        first = _claim(db, claims)
        second = _claim(db, claims)
    assert first.done is None and second.done is None and second.record.attempts == 2


def test_a_released_claim_is_free_for_the_next_attempt_at_once(db):
    claims = ActionClaims(seconds=300)
    held = _claim(db, claims)
    with db.connection() as conn, conn.transaction():
        claims.release(conn, held, error=RuntimeError("SMTP 421"))
    assert _claim(db, claims).done is None


class Hold:
    """One hold of run 1, named by its token (the engine mints one per hold of the run lock)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner

    def check(self) -> None:
        return None


class Journal:
    """The events the claims journal, in order (`orchestrator.action_journal` writes them to the audit chain)."""

    def __init__(self) -> None:
        self.events: list[tuple[ActionEvent, dict | None]] = []

    def record(self, conn, *, event, record, detail="") -> None:
        self.events.append((event, record.result))


def test_an_attempt_whose_claim_was_taken_over_records_nothing_when_it_finishes_late(db):
    """Before, finishing ignored the owner: the first attempt, whose claim had run out and been taken over, still
    set the key done with its own result and journalled a `done`, and the new owner then journalled another."""
    journal = Journal()
    with fenced(Hold("run:1:hold-a")):
        _claim(db, ActionClaims(seconds=0, journal=journal))
    with fenced(Hold("run:1:hold-b")):
        _claim(db, ActionClaims(seconds=300, journal=journal))
    claims = ActionClaims(seconds=300, journal=journal)
    with fenced(Hold("run:1:hold-a")), db.connection() as conn, conn.transaction(), \
            pytest.raises(ClaimTakenOver) as late:
        claims.finish(conn, key="run:1:send:ana", result={"sent": "by a"})
    assert late.value.key == "run:1:send:ana"
    with fenced(Hold("run:1:hold-b")), db.connection() as conn, conn.transaction():
        claims.finish(conn, key="run:1:send:ana", result={"sent": "by b"})
    with db.connection() as conn:
        record = lookup(conn, "run:1:send:ana")
    assert record is not None and record.state == "done" and record.result == {"sent": "by b"}
    assert [e for e in journal.events if e[0] is ActionEvent.DONE] == [(ActionEvent.DONE, {"sent": "by b"})]
