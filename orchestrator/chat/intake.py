"""Intake: a request in words becomes a durable intent and a queued run, or an honest "I don't know how".

The router places the request among the known kinds (`routing`); below its confidence nothing is
guessed: the closest kinds come back as "Did you mean …?" buttons, and a message soon after opsos
asked for a missing parameter is taken as its answer. The intent, its run and their audit events are
one transaction; the run is enqueued after commit (a lost enqueue is recovered by the scheduler).
"""
from __future__ import annotations

import json
import secrets
from typing import Any

import structlog
from psycopg import Connection
from redis.exceptions import RedisError

from orchestrator import audit, intents, runs, words
from orchestrator.chat.requester import Requester, refuse
from orchestrator.chat.routing import Classifier, is_bare_value
from orchestrator.errors import InvalidConstraint
from orchestrator.intents import parse_constraints
from orchestrator.messages import Message
from orchestrator.queue import enqueue_advance
from orchestrator.services import Services
from orchestrator.workflows import WORKFLOWS

log = structlog.get_logger(__name__)

SUGGESTION_KEY = "opsos:suggestion:"
SUGGESTION_TTL_SECONDS = 3600


def capabilities() -> list[tuple[str, str]]:
    """What opsos can be asked for: each workflow's title and description (not those only events start)."""
    return [(workflow.title, workflow.describe) for workflow in WORKFLOWS.values() if not workflow.triggered_by]


def submit(services: Services, classifier: Classifier, who: Requester, text: str, *,
           dedupe_key: str | None = None) -> Message:
    """Turn a request into an intent and a queued run (one transaction, with audit events), then enqueue it."""
    if not services.policy.is_operator(who.identity):
        return refuse(services, who, "request", {"text": text[:200]})
    request = " ".join(text.split())
    limit = services.settings.max_request_chars
    if not request:
        return invalid(services, who, "it is empty", text)
    if len(request) > limit:
        return invalid(services, who, f"it is {len(request)} characters long; the limit is {limit}", text)
    classification = classifier.classify(request)
    confident = classification.kind is not None and classification.workflow in WORKFLOWS
    if not confident or is_bare_value(request):
        # Not a request of its own: if opsos just asked this operator for a parameter, it is the answer.
        answered = answer(services, who, request, dedupe_key=dedupe_key)
        if answered is not None:
            return answered
    if not confident:
        with services.stores.pool.connection() as conn, conn.transaction():
            audit.append(conn, actor=who.identity, at=services.now(), kind="request.not_understood",
                         payload={"request": request[:500], "closest": classification.closest})
        offered = [(kind, flow) for kind, flow in classification.alternatives if flow in WORKFLOWS]
        token = _offer(services, request, offered) if offered else None
        return words.not_understood(request, capabilities(), [kind for kind, _ in offered], token)
    return start(services, who, request=request, kind=classification.kind, workflow=classification.workflow,
                      params={"confidence": classification.confidence}, dedupe_key=dedupe_key)


def _offer(services: Services, request: str, offered: list[tuple[str, str]]) -> str | None:
    """Keep a not-understood request for an hour, so a "Did you mean …?" button can start it as that kind.

    Redis is right here: a suggestion is short-lived context, and losing it loses no intent, only
    a shortcut ("ask again"). Returns the token the buttons carry, or None if Redis is away.
    """
    token = secrets.token_hex(5)
    try:
        services.stores.redis.set(SUGGESTION_KEY + token, json.dumps({"request": request, "offered": offered}),
                                       ex=SUGGESTION_TTL_SECONDS)
    except RedisError:
        return None
    return token


def choose(services: Services, who: Requester, argument: str) -> Message:
    """A "Did you mean …?" button: start the kept request as the kind the operator picked."""
    token, _, index = argument.partition(":")
    try:
        kept = services.stores.redis.get(SUGGESTION_KEY + token)
    except RedisError:
        kept = None
    if kept is None:
        return words.suggestion_expired()
    suggestion = json.loads(kept)
    offered = suggestion["offered"]
    if int(index) >= len(offered):
        return words.suggestion_expired()
    kind, workflow = offered[int(index)]
    return start(services, who, request=suggestion["request"], kind=kind, workflow=workflow,
                      params={"confidence": None, "chosen_by": who.identity}, dedupe_key=f"choose:{token}")


def start(services: Services, who: Requester, *, request: str, kind: str, workflow: str, params: dict[str, Any],
          dedupe_key: str | None = None) -> Message:
    """Write the intent and its queued run (one transaction, with their audit events), then enqueue the run."""
    try:
        with services.stores.pool.connection() as conn, conn.transaction():
            created = _create(services, conn, who, request=request, kind=kind, workflow=workflow, params=params,
                              dedupe_key=dedupe_key)
            if created is None:
                return words.duplicate_request(intents.by_dedupe_key(conn, dedupe_key or ""))
    except InvalidConstraint as error:
        # Nothing was written (the transaction rolled back): the operator is told which words to fix.
        return invalid(services, who, str(error), request)
    intent, run = created
    enqueue_advance(services.stores.redis, run.id, queue_name=WORKFLOWS[workflow].queue)
    log.info("intent.created", intent_id=intent.id, run_id=run.id, kind=intent.kind)
    return words.accepted(intent, run, WORKFLOWS[workflow].title)


def answer(services: Services, who: Requester, text: str, *, dedupe_key: str | None = None) -> Message | None:
    """Take `text` as the answer to the parameter opsos asked this operator for in this conversation.

    Starts the asked kind again on the request completed with the answer, linked to the asked
    intent; its run reads the request from the top, so a reply that still lacks the value is asked
    about again. None when no question is open (never asked, answered or overtaken by a later
    request, or older than the answer window): the text is then an ordinary message.
    """
    if not services.policy.is_operator(who.identity):
        return refuse(services, who, "answer", {"text": text[:200]})
    since = services.now() - services.settings.answer_window
    where = {"channel": who.channel, "conversation": who.conversation, "requested_by": who.identity}
    with services.stores.pool.connection() as conn:
        question = intents.open_question(conn, **where, since=since)
    if question is None or question.workflow not in WORKFLOWS:
        return None
    request = intents.answered_request(question.intent.request, text)
    limit = services.settings.max_request_chars
    if len(request) > limit:
        return invalid(services, who, f"with the request it answers it is {len(request)} characters long; "
                                  f"the limit is {limit}", text)
    try:
        with services.stores.pool.connection() as conn, conn.transaction():
            if not intents.claim(conn, question, since=since):
                return None
            created = _create(services, conn, who, request=request, kind=question.intent.kind,
                              workflow=question.workflow, params={"confidence": None, "answers": question.intent.id},
                              dedupe_key=dedupe_key)
            if created is None:
                return words.duplicate_request(intents.by_dedupe_key(conn, dedupe_key or ""))
            intent, run = created
            intents.record_answer(conn, question=question, answer=intent, run_id=run.id, reply=text,
                                  now=services.now())
    except InvalidConstraint as error:
        # The claim rolled back with the rest: the question stays open for a corrected reply.
        return invalid(services, who, str(error), text)
    enqueue_advance(services.stores.redis, run.id, queue_name=WORKFLOWS[question.workflow].queue)
    log.info("question.answered", question=question.intent.id, intent_id=intent.id, run_id=run.id)
    return words.answer_taken(question.intent, question.missing, intent, run, WORKFLOWS[question.workflow].title)


def _create(services: Services, conn: Connection, who: Requester, *, request: str, kind: str, workflow: str,
            params: dict[str, Any], dedupe_key: str | None) -> tuple[intents.Intent, runs.Run] | None:
    """The intent and its queued run in the caller's transaction; None if `dedupe_key` was seen before."""
    settings, now = services.settings, services.now()
    constraints = parse_constraints(request, now=now, default_budget=settings.intent_budget_usd,
                                    default_days=settings.intent_deadline_days)
    intent = intents.create(
        conn, requested_by=who.identity, channel=who.channel, conversation=who.conversation,
        request=request, kind=kind, params=params, constraints=constraints, dedupe_key=dedupe_key, now=now,
    )
    if intent is None:
        return None
    return intent, runs.create(conn, intent_id=intent.id, workflow=workflow, actor=who.identity, now=now)


def invalid(services: Services, who: Requester, reason: str, text: str) -> Message:
    with services.stores.pool.connection() as conn, conn.transaction():
        audit.append(conn, actor=who.identity, at=services.now(), kind="request.invalid",
                     payload={"reason": reason, "request": text[:200]})
    return words.invalid_request(reason)
