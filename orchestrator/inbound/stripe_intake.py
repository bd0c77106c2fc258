"""Stripe's webhook events in: stored once by event id before the endpoint answers, then handled by a job that
rules on each (`stripe_rules`) and makes the intent, or tells the operator what was recorded instead.

    POST /stripe/webhook ─► verified (bot) ─► receive: row in stripe_events (ON CONFLICT: a redelivery) ─► 2xx
                                                  └─► job handle_stripe_event ─► rule ─► intent + run (dedupe key
                                                      `stripe:<event id>`) │ a report to the operator's home channel

A lost job (Redis away after the row was stored) is enqueued again by the next redelivery of the event, or by
the scheduler's recovery sweep (`recover`). A handling that fails is counted; after `stripe_event_max_attempts`
the event is dead (no longer swept, told to the operator once) until `retry_dead`. A signed body that does not fit
`StripeEvent` is stored as unreadable and told to the operator: answered 2xx, since Stripe would only send the same
body again for days.
"""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import structlog
from psycopg import Connection
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from connectors import Contact
from orchestrator import audit, intents, outbox, runs, words
from orchestrator.chat.requester import Requester
from orchestrator.delivery.address import operator_address
from orchestrator.errors import STORES_UNAVAILABLE
from orchestrator.inbound import events
from orchestrator.inbound.events import EventState
from orchestrator.inbound.stripe_rules import Facts, Outcome, Ruling, StripeEvent, decide, read
from orchestrator.intents import Constraints
from orchestrator.messages import Message
from orchestrator.queue import enqueue_advance, queue
from orchestrator.services import Services
from orchestrator.workflows import WORKFLOWS

log = structlog.get_logger(__name__)

HANDLE = "orchestrator.jobs.handle_stripe_event"
REQUESTER = words.stripe_events.REQUESTER
# Events of one object (a subscription) are ruled on one at a time: the order check and the row that moves the
# object's state on must not interleave with another event's, or an older one could slip past a newer one.
LOCK_OBJECT = "SELECT pg_advisory_xact_lock(7242003, hashtext(%s))"
# An event still unhandled this long after it arrived has lost its job: the recovery sweep enqueues it again.
STALE_AFTER = timedelta(minutes=2)


class Delivery(BaseModel):
    """A verified webhook body: the event as opsos reads it, and the JSON as Stripe sent it (what is stored).

    `event` is None for a body that does not fit `StripeEvent`; `unreadable` then says why."""

    event_id: str
    raw: dict[str, Any]
    event: StripeEvent | None = None
    unreadable: str = ""


class Received(BaseModel):
    event_id: str
    new: bool
    enqueued: bool


def parse(body: bytes | str) -> Delivery:
    """The event in a (verified) webhook body, or the body as an unreadable event when it has an id but does not fit
    the model (nor its facts be read); raises ValueError when it is not JSON or not an object with an id."""
    raw = json.loads(body)
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise ValueError("a Stripe event is a JSON object with an id")
    try:
        event = StripeEvent.model_validate(raw)
        read(event)
    except ValidationError as error:
        why = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in error.errors()[:3])
        return Delivery(event_id=raw["id"], raw=raw, unreadable=why)
    except (AttributeError, TypeError, ValueError, OverflowError, KeyError) as error:
        # A field of an odd shape the model let through (a string where an object belongs, a timestamp past the
        # year 9999): the event is still Stripe's, signed, and kept; never a 5xx that Stripe would retry for days.
        return Delivery(event_id=raw["id"], raw=raw, unreadable=f"{type(error).__name__}: {error}")
    return Delivery(event_id=raw["id"], raw=raw, event=event)


def receive(services: Services, delivery: Delivery) -> Received:
    """Store the event once by its id (a redelivery changes nothing), then ask a worker to handle it.

    Raises the store's error when the row could not be written: the endpoint answers 5xx and Stripe retries.
    A failed enqueue is only logged: the row is safe, and a redelivery or the recovery sweep enqueues it again.
    """
    event = delivery.event
    if event is None:
        return _receive_unreadable(services, delivery)
    with services.stores.pool.connection() as conn, conn.transaction():
        new = events.store(conn, id=event.id, type=event.type, created=event.created,
                           object_key=read(event).object_key, payload=delivery.raw, received_at=services.now())
        # A redelivery of an event not yet handled may be one whose job was lost: it is enqueued again (handling is
        # idempotent); one already handled changes nothing.
        stored = None if new else events.get(conn, event.id)
        waiting = new or (stored is not None and stored.state is EventState.RECEIVED)
    enqueued = enqueue_handle(services, event.id) if waiting else False
    log.info("stripe.event_received", event_id=event.id, type=event.type, new=new, enqueued=enqueued)
    return Received(event_id=event.id, new=new, enqueued=enqueued)


def _receive_unreadable(services: Services, delivery: Delivery) -> Received:
    """Store a signed event opsos cannot read, and tell the operator, once (one transaction)."""
    kind = delivery.raw.get("type")
    kind = kind if isinstance(kind, str) else ""
    with services.stores.pool.connection() as conn, conn.transaction():
        new = events.store_unreadable(conn, id=delivery.event_id, payload=delivery.raw, kind=kind,
                                      why=delivery.unreadable, received_at=services.now())
        if new:
            channel, conversation = operator_address(conn, services.settings.home_channel)
            outbox.post(conn, channel=channel, conversation=conversation, dedupe_key=f"stripe:{delivery.event_id}",
                        message=words.stripe_events.unreadable(kind, delivery.event_id, delivery.unreadable))
            audit.append(conn, actor=REQUESTER, kind="stripe.event_unreadable", at=services.now(),
                         payload={"event": delivery.event_id, "type": kind, "why": delivery.unreadable[:500]})
    log.warning("stripe.event_unreadable", event_id=delivery.event_id, new=new, why=delivery.unreadable[:200])
    return Received(event_id=delivery.event_id, new=new, enqueued=False)


def enqueue_handle(services: Services, event_id: str) -> bool:
    try:
        queue(services.stores.redis, "default").enqueue(HANDLE, event_id, job_timeout=300, result_ttl=3600,
                                                        failure_ttl=86400, description=f"stripe event {event_id}")
    except RedisError as error:
        log.warning("stripe.enqueue_failed", event_id=event_id, error=str(error))
        return False
    return True


def find_contact(services: Services, facts: Facts) -> Contact | None:
    """The CRM contact the event is about: the one linked to the Stripe customer (by `opsos contacts sync stripe`),
    else the one whose id is the Stripe customer's, else the one with its email."""
    if facts.customer:
        contact = services.crm.by_stripe_customer(facts.customer) or services.crm.get(facts.customer)
        if contact is not None:
            return contact
    if not facts.email:
        return None
    wanted = facts.email.lower()
    matching = [c for c in services.crm.segment("active") + services.crm.segment("lapsed") if c.email.lower() == wanted]
    return matching[0] if len(matching) == 1 else None


def handle(services: Services, event_id: str) -> Outcome | None:
    """Rule on a stored event once: make its intent and queued run, or report it; None if it was handled before.

    Re-raises what made the handling fail, after counting the failure (an outage of opsos's own stores is not
    counted: it says nothing about the event); the attempt that reaches the limit makes the event dead.
    """
    try:
        return _handle(services, event_id)
    except STORES_UNAVAILABLE:
        raise
    except Exception as error:
        _count_failure(services, event_id, error)
        raise


def _count_failure(services: Services, event_id: str, error: Exception) -> None:
    detail = f"{type(error).__name__}: {error}"
    log.warning("stripe.event_failed", event_id=event_id, error=detail[:300])
    with services.stores.pool.connection() as conn, conn.transaction():
        counted = events.failed(conn, event_id, error=detail, max_attempts=services.settings.stripe_event_max_attempts)
        if counted is None or counted[0] is not EventState.DEAD:
            return
        stored = events.get(conn, event_id)
        assert stored is not None, "a counted event exists"
        channel, conversation = operator_address(conn, services.settings.home_channel)
        outbox.post(conn, channel=channel, conversation=conversation,
                    message=words.stripe_events.dead(stored.type, event_id, counted[1], detail))
        audit.append(conn, actor=REQUESTER, kind="stripe.event_dead", at=services.now(),
                     payload={"event": event_id, "type": stored.type, "attempts": counted[1], "error": detail[:500]})


def _handle(services: Services, event_id: str) -> Outcome | None:
    """`handle` without the counting of failures.

    The ruling, the intent, the run, the report and the event's outcome are one transaction, so a worker killed
    half-way leaves the event unhandled for the sweep, never an intent without its outcome or the other way round.
    """
    pool = services.stores.pool
    with pool.connection() as conn:
        stored = events.get(conn, event_id)
    if stored is None or stored.state is not EventState.RECEIVED:
        return None
    event = StripeEvent.model_validate(stored.payload)
    facts = read(event)
    contact = find_contact(services, facts)
    run_id = None
    with pool.connection() as conn, conn.transaction():
        conn.execute(LOCK_OBJECT, (stored.object_key,))
        stored = events.get(conn, event_id, for_update=True)
        if stored is None or stored.state is not EventState.RECEIVED:
            return None  # another worker handled it (or gave up on it) while this one read the CRM
        ruling = decide(event, facts, contact=contact, fulfilled=events.fulfilled(conn, object_key=stored.object_key),
                        newest_applied=events.newest_applied(conn, object_key=stored.object_key, besides=event_id))
        channel, conversation = operator_address(conn, services.settings.home_channel)
        who = Requester(identity=REQUESTER, channel=channel, conversation=conversation)
        intent_id = None
        if ruling.workflow is not None:
            intent_id, run_id = _start(services, conn, who, event, ruling)
        else:
            report = _report(event, facts, ruling, stored.object_key)
            if report is not None:
                outbox.post(conn, channel=channel, conversation=conversation, message=report,
                            dedupe_key=f"stripe:{event.id}")
        events.finish(conn, event_id, outcome=ruling.outcome, detail=_detail(ruling), applied=ruling.applies,
                      intent_id=intent_id, now=services.now())
        audit.append(conn, actor=REQUESTER, kind="stripe.event_handled", at=services.now(), intent_id=intent_id,
                     run_id=run_id, payload={"event": event.id, "type": event.type, "outcome": ruling.outcome,
                                             "object": stored.object_key, "applied": ruling.applies})
    if run_id is not None:
        enqueue_advance(services.stores.redis, run_id, queue_name=WORKFLOWS[ruling.workflow or ""].queue)
    log.info("stripe.event_handled", event_id=event_id, outcome=ruling.outcome, run_id=run_id)
    return ruling.outcome


def _start(services: Services, conn: Connection, who: Requester, event: StripeEvent,
           ruling: Ruling) -> tuple[int, int | None]:
    """The intent (dedupe key `stripe:<event id>`) and its queued run, in the caller's transaction."""
    workflow, params, now = ruling.workflow or "", ruling.params, services.now()
    request = _request(ruling)
    # Not parsed from the request's words: "$29.00 failed" is an amount, not a budget.
    constraints = Constraints(budget_usd=services.settings.intent_budget_usd,
                              deadline=now + timedelta(days=services.settings.intent_deadline_days))
    intent = intents.create(conn, requested_by=who.identity, channel=who.channel, conversation=who.conversation,
                            request=request, kind=workflow, params={**params, "stripe_event": event.id},
                            constraints=constraints, dedupe_key=f"stripe:{event.id}", now=now)
    if intent is None:
        # The key is taken only if an intent was made for this event outside this handling (the handling commits
        # the intent and the event's outcome together): that intent stands, and no second run is made.
        existing = intents.by_dedupe_key(conn, f"stripe:{event.id}")
        assert existing is not None, "the dedupe key conflicted, so its intent exists"
        return existing.id, None
    run = runs.create(conn, intent_id=intent.id, workflow=workflow, actor=who.identity, now=now)
    return intent.id, run.id


def _request(ruling: Ruling) -> str:
    p, say = ruling.params, words.stripe_events
    match ruling.outcome:
        case Outcome.DUNNING:
            return say.dunning_request(p["name"], p["amount_cents"], p["currency"], p["attempt"], p["final"])
        case Outcome.FULFILMENT:
            return say.fulfilment_request(p["name"], p["email"], p["plan"])
    return say.lapse_request(p["name"])


def _report(event: StripeEvent, facts: Facts, ruling: Ruling, object_key: str) -> Message | None:
    """What the operator is told of an event that made no intent; None for a sign-up's second event."""
    say = words.stripe_events
    match ruling.outcome:
        case Outcome.RENEWED:
            return say.renewed(ruling.params["name"], ruling.params["amount_cents"])
        case Outcome.OUT_OF_ORDER:
            return say.out_of_order(event.type, event.id, event.created, object_key, ruling.params["newest_applied"])
        case Outcome.UNKNOWN_CUSTOMER:
            return say.unknown_customer(event.type, event.id, facts.customer, facts.email)
        case Outcome.NOT_HANDLED:
            return say.not_handled(event.type, event.id)
    # Stripe sends a checkout and a first invoice for one sign-up: the first made the fulfilment, this is recorded.
    return None


def _detail(ruling: Ruling) -> str:
    newest = ruling.params.get("newest_applied")
    return f"older than the event applied at {newest.isoformat()}" if newest is not None else ""


def recover(services: Services) -> list[str]:
    """Enqueue every event received a while ago and still unhandled (its job was lost); handling is idempotent,
    so an event enqueued twice is handled once."""
    with services.stores.pool.connection() as conn:
        stale = events.waiting(conn, before=services.now() - STALE_AFTER)
    enqueued = [event_id for event_id in stale if enqueue_handle(services, event_id)]
    if enqueued:
        log.info("stripe.events_recovered", events=enqueued)
    return enqueued


def retry_dead(services: Services, *, actor: str, ids: list[str] | None = None) -> list[str]:
    """Give dead events (all, or those of `ids`) a fresh allowance of attempts and enqueue them; their ids."""
    with services.stores.pool.connection() as conn, conn.transaction():
        again = events.retry_dead(conn, ids=ids)
        if again:
            audit.append(conn, actor=actor, kind="stripe.events_retried", at=services.now(),
                         payload={"events": again})
    for event_id in again:
        enqueue_handle(services, event_id)
    return again
