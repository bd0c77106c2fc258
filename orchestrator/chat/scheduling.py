"""Schedules in chat: "every Monday at 9 …" offered back in words for confirmation, stored only once confirmed;
`schedules`, `pause schedule 3`, `resume schedule 3`, `unschedule 3`.

The request is routed when the schedule is made, not when it fires: the offer can then say which workflow it
will run, a request the router cannot place is refused before anything is stored, and a later change to the
registry of kinds cannot turn a confirmed schedule into something else. The offer waits in Redis for an hour
(short-lived context: losing it loses only the offer); the confirmed schedule is a PostgreSQL row, once.
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime
from zoneinfo import ZoneInfo

from redis.exceptions import RedisError

from orchestrator import audit, words
from orchestrator.chat.requester import Requester
from orchestrator.chat.routing import Classifier
from orchestrator.errors import InvalidConstraint, NotFound
from orchestrator.intents import parse_constraints
from orchestrator.messages import Message
from orchestrator.schedules import records, timing
from orchestrator.schedules.records import ScheduleState, ScheduleTerms, ScheduleUnchanged
from orchestrator.services import Services
from orchestrator.workflows import WORKFLOWS

PROPOSAL_KEY = "opsos:schedule-proposal:"
PROPOSAL_TTL_SECONDS = 3600
# "…, budget $5 a month" sets the schedule's own cap; any other budget in the words is each run's, as in a request.
_MONTHLY = re.compile(r"[,;]?\s*\b(?:with\s+a\s+)?(?:budget|cap)\s+(?:of\s+)?\$?(\d+(?:\.\d{1,2})?)\s*"
                      r"(?:a|per|each|every)\s+month\b", re.IGNORECASE)
DONE = {ScheduleState.PAUSED: "paused", ScheduleState.ACTIVE: "resumed", ScheduleState.REMOVED: "removed"}


class Proposal(ScheduleTerms):
    """A schedule offered and not yet confirmed, as kept in Redis."""


def monthly_cap(request: str, default: float) -> tuple[str, float]:
    """The request without its "budget $N a month", and that cap (else `default`) (pure)."""
    match = _MONTHLY.search(request)
    if match is None:
        return request, default
    cap = float(match.group(1)) or default
    return (request[:match.start()] + request[match.end():]).strip(" ,;"), cap


def propose(services: Services, classifier: Classifier, who: Requester, text: str) -> Message:
    """Read the timing and route the request; say both back with the next three times and a Confirm button."""
    reading = timing.read(text)
    if not isinstance(reading, timing.Timing):
        reason = reading.reason if reading is not None else "there is no timing at its start"
        _refused(services, who, reason, text)
        return words.schedules.timing_unreadable(reason)
    settings, now = services.settings, services.now()
    request, cap = monthly_cap(reading.request, settings.schedule_budget_monthly_usd)
    if len(request) > settings.max_request_chars:
        return words.invalid_request(f"it is {len(request)} characters long; the limit is {settings.max_request_chars}")
    classification = classifier.classify(request)
    if classification.kind is None or classification.workflow not in WORKFLOWS:
        _refused(services, who, "not understood", request, closest=classification.closest)
        return words.schedules.cannot_schedule(request, classification.closest)
    try:
        asked = parse_constraints(request, now=now, default_budget=settings.intent_budget_usd,
                                  default_days=settings.intent_deadline_days)
    except InvalidConstraint as error:
        _refused(services, who, str(error), request)
        return words.invalid_request(str(error))
    offer = Proposal(cron=reading.cron, timezone=settings.timezone, request=request, kind=classification.kind,
                     workflow=classification.workflow, budget_monthly_usd=cap, created_by=who.identity,
                     channel=who.channel, conversation=who.conversation)
    token = "s" + secrets.token_hex(5)
    try:
        services.stores.redis.set(PROPOSAL_KEY + token, offer.model_dump_json(), ex=PROPOSAL_TTL_SECONDS)
    except RedisError:
        return words.stores_unavailable()
    zone = settings.zone
    return words.schedules.proposal(token=token, cron=offer.cron, zone=zone,
                                    upcoming=timing.next_times(offer.cron, zone, now), request=request,
                                    title=WORKFLOWS[offer.workflow].title, budget_monthly_usd=cap,
                                    run_budget_usd=asked.budget_usd)


def _refused(services: Services, who: Requester, reason: str, text: str, closest: list[str] | None = None) -> None:
    with services.stores.pool.connection() as conn, conn.transaction():
        audit.append(conn, actor=who.identity, at=services.now(), kind="schedule.refused",
                     payload={"reason": reason, "request": text[:200], "closest": closest or []})


def confirm(services: Services, who: Requester, token: str) -> Message:
    """Store the offered schedule, once: a second click (or a retried delivery) finds it stored by its token."""
    try:
        kept = services.stores.redis.get(PROPOSAL_KEY + token)
    except RedisError:
        kept = None
    now = services.now()
    with services.stores.pool.connection() as conn, conn.transaction():
        stored = records.by_proposal(conn, token)
        if stored is not None:
            return words.schedules.already_created(stored)
        if kept is None:
            return words.schedules.proposal_expired()
        offer = Proposal.model_validate_json(kept)
        # Two clicks at once both find nothing stored; the unique proposal token lets one insert.
        schedule = records.create(conn, proposal=token, **offer.model_dump(), confirmed_by=who.identity, now=now)
        if schedule is None:
            # The other click committed first, and this new statement sees its row.
            stored = records.by_proposal(conn, token)
            return words.schedules.already_created(stored) if stored else words.schedules.proposal_expired()
    return words.schedules.created(schedule, timing.next_times(schedule.cron, ZoneInfo(schedule.timezone), now))


def overview(services: Services) -> Message:
    """`schedules`: every schedule not removed, with its next time when it is active."""
    now = services.now()
    with services.stores.pool.connection() as conn:
        listed = records.listed(conn)
    return words.schedules.overview([(s, _next(s, now) if s.state is ScheduleState.ACTIVE else None) for s in listed])


def _next(schedule: records.Schedule, now: datetime) -> datetime:
    return timing.next_times(schedule.cron, ZoneInfo(schedule.timezone), now, 1)[0]


def change(services: Services, who: Requester, schedule_id: int, to: ScheduleState) -> Message:
    """Pause, resume or remove a schedule for the operator, audited in the same transaction."""
    try:
        with services.stores.pool.connection() as conn, conn.transaction():
            schedule = records.change_state(conn, schedule_id, to, actor=who.identity, now=services.now(),
                                            reason="" if to is ScheduleState.ACTIVE else f"by {who.identity}",
                                            payload={"via": who.channel})
    except NotFound:
        return words.invalid_request(f"there is no schedule #{schedule_id}")
    except ScheduleUnchanged as error:
        return words.invalid_request(str(error))
    return words.schedules.changed(schedule, DONE[to], who.identity)
