"""Every outside action has audit events of its own, written by the transaction that claims or finishes its key
(review defect 8, second half): a side effect is never unrecorded, and a claim rolled back leaves no event."""
from __future__ import annotations

from collections import Counter

import pytest

from connectors import AccessChange, UnknownRecord
from orchestrator import anchors, audit, replay
from orchestrator.keys import action_key
from tests.orchestrator.helpers import approve_and_finish, count, run_state, seed


def _connector_events(db) -> list[audit.AuditEvent]:
    with db.connection() as conn:
        return [e for e in audit.events(conn) if e.kind.startswith("connector.")]


def test_each_email_and_charge_of_a_run_has_one_started_and_one_done_event_in_the_chain(services, db, work):
    seed(services, declining=None)
    approve_and_finish(services, work)
    assert run_state(db, 1) == "succeeded"
    events = _connector_events(db)
    with db.connection() as conn:
        keys = [row["key"] for row in conn.execute("SELECT key FROM connector_actions").fetchall()]
    assert len(keys) == 10  # five emails, five renewals
    per_key = Counter((e.payload["key"], e.kind) for e in events)
    assert per_key == Counter({(key, kind): 1 for key in keys
                               for kind in ("connector.action_started", "connector.action_done")})
    assert {(e.run_id, e.intent_id) for e in events} == {(1, 1)}
    done = next(e for e in events if e.kind == "connector.action_done" and e.payload["connector"] == "email")
    assert done.payload["step"] == "send_emails" and done.payload["result"]["to"].endswith("@example.com")
    with db.connection() as conn:
        assert audit.verify(conn).ok
        # Replay rebuilds the run from the same log: the connector events change no row it rebuilds.
        assert replay.check(conn, 1, anchors=anchors.book(services.settings)).agrees


def test_a_declined_charge_is_journalled_as_failed_and_its_retry_as_a_new_attempt(services, db, work):
    seed(services, declining="c-eve")
    approve_and_finish(services, work)
    eve = action_key(1, "collect_renewals", "c-eve")
    kinds = [e.kind for e in _connector_events(db) if e.payload["key"] == eve]
    attempts = services.payment_retry.attempts
    assert kinds == ["connector.action_started", "connector.action_failed"] * attempts


def test_a_claim_rolled_back_with_its_action_leaves_neither_record_nor_event(services, db):
    with pytest.raises(UnknownRecord):
        services.crm.execute(action=AccessChange(contact_id="c-nobody", access="paused"), key="run:1:pause:c-nobody")
    assert _connector_events(db) == [] and count(db, "connector_actions") == 0


def test_compensating_an_action_is_journalled_in_its_own_transaction(services, db):
    seed(services, declining=None)
    key = "run:9:pause_access:c-ana"
    services.crm.execute(action=AccessChange(contact_id="c-ana", access="paused"), key=key)
    services.crm.compensate(key=key)
    services.crm.compensate(key=key)  # already undone: nothing more happens, nothing more is recorded
    assert [e.kind for e in _connector_events(db)] == ["connector.action_started", "connector.action_done",
                                                      "connector.action_compensated"]
    # No run 9 exists: the events are kept all the same, tied to no run.
    assert {e.run_id for e in _connector_events(db)} == {None}
