"""The control plane's front door: what every chat front end calls. It holds the rules; adapters only translate."""
from __future__ import annotations

import json
import re
import secrets
from typing import Any

import structlog
from psycopg import Connection
from pydantic import BaseModel
from redis.exceptions import RedisError

from orchestrator import (
    agent_calls,
    approvals,
    audit,
    intents,
    knowledge,
    outbox,
    replay,
    reports,
    runs,
    scheduler,
    signin,
    words,
)
from orchestrator.approvals import Approval, Decision
from orchestrator.commands import APPROVAL_ID, Command, parse
from orchestrator.errors import (
    ApprovalAlreadyDecided,
    ApprovalExpired,
    ApprovalStale,
    InvalidTransition,
    NotFound,
    OpsError,
)
from orchestrator.intake import Classifier, is_bare_value
from orchestrator.intents import parse_constraints
from orchestrator.messages import Message
from orchestrator.queue import enqueue_advance
from orchestrator.runs import RunEvent, RunState
from orchestrator.services import Services
from orchestrator.workflows import WORKFLOWS
from orchestrator.workflows.forget import FORGET

log = structlog.get_logger(__name__)

SUGGESTION_KEY = "opsos:suggestion:"
SUGGESTION_TTL_SECONDS = 3600


class Requester(BaseModel):
    """Who speaks, from where: the identity is `channel:user-id`; replies go to `conversation`."""

    identity: str
    channel: str
    conversation: str


class Decided(BaseModel):
    """The outcome of a button click: a reply for the clicker, and the approval message as it should now read."""

    reply: Message
    approval: Approval | None = None
    updated: Message | None = None
    changed: bool = False


class Operations:
    def __init__(self, services: Services, classifier: Classifier) -> None:
        self.services = services
        self.classifier = classifier

    @property
    def pool(self):
        return self.services.stores.pool

    def capabilities(self) -> list[tuple[str, str]]:
        return [(workflow.title, workflow.describe) for workflow in WORKFLOWS.values()]

    def refuse(self, who: Requester, attempted: str, detail: dict[str, Any] | None = None) -> Message:
        with self.pool.connection() as conn, conn.transaction():
            audit.append(conn, actor=who.identity, kind="access.refused",
                         payload={"attempted": attempted, "channel": who.channel, **(detail or {})})
        log.warning("access.refused", identity=who.identity, attempted=attempted)
        return words.not_authorised(who.identity)

    def handle_text(self, who: Requester, text: str, *, dedupe_key: str | None = None) -> Message:
        """Anything typed to opsos: a command (status, pause 3, approve a…) or a request in words.

        A message the router does not place, soon after opsos asked for a parameter, answers it (see `answer`).
        """
        command = parse(text)
        if command.command is Command.HELP:
            return words.help_message(self.capabilities())
        if not self.services.policy.is_operator(who.identity):
            return self.refuse(who, command.command.value, {"text": text[:200]})
        match command.command:
            case Command.STATUS:
                return self.status(int(command.argument) if command.argument else None)
            case Command.PAUSE | Command.RESUME | Command.CANCEL:
                return self.change_run(who, int(command.argument), RunEvent(command.command.value))
            case Command.APPROVE | Command.REJECT:
                decision = Decision.APPROVED if command.command is Command.APPROVE else Decision.REJECTED
                return self.decide(who, command.argument, decision).reply
            case Command.WHY if re.fullmatch(APPROVAL_ID, command.argument):
                return self.explain(command.argument)
            case Command.WHY:
                return knowledge.why(self.services, about=command.argument)
            case Command.CHOOSE:
                return self.choose(who, command.argument)
            case Command.REMEMBER:
                return knowledge.remember(self.services, identity=who.identity, channel=who.channel,
                                          text=command.argument)
            case Command.RECALL:
                return knowledge.recall(self.services, question=command.argument)
            case Command.FORGET:
                memory_id = int(command.argument)
                return self.start(who, request=f"forget memory #{memory_id}", kind="forget_memory",
                                  workflow=FORGET.name, params={"memory_id": memory_id})
            case Command.DIGEST:
                scheduler.send_digest_now(self.services, channel=who.channel, conversation=who.conversation)
                return words.digest_on_its_way(who.channel)
            case Command.DASHBOARD:
                return signin.link_message(self.services, who.identity)
            case Command.REPLAY:
                return replay.reply(self.pool, int(command.argument))
        return self.submit(who, command.argument, dedupe_key=dedupe_key)

    def submit(self, who: Requester, text: str, *, dedupe_key: str | None = None) -> Message:
        """Turn a request into an intent and a queued run (one transaction, with audit events), then enqueue it."""
        if not self.services.policy.is_operator(who.identity):
            return self.refuse(who, "request", {"text": text[:200]})
        request = " ".join(text.split())
        limit = self.services.settings.max_request_chars
        if not request:
            return self._invalid(who, "it is empty", text)
        if len(request) > limit:
            return self._invalid(who, f"it is {len(request)} characters long; the limit is {limit}", text)
        classification = self.classifier.classify(request)
        confident = classification.kind is not None and classification.workflow in WORKFLOWS
        if not confident or is_bare_value(request):
            # Not a request of its own: if opsos just asked this operator for a parameter, it is the answer.
            answered = self.answer(who, request, dedupe_key=dedupe_key)
            if answered is not None:
                return answered
        if not confident:
            with self.pool.connection() as conn, conn.transaction():
                audit.append(conn, actor=who.identity, kind="request.not_understood",
                             payload={"request": request[:500], "closest": classification.closest})
            offered = [(kind, flow) for kind, flow in classification.alternatives if flow in WORKFLOWS]
            token = self._offer(request, offered) if offered else None
            return words.not_understood(request, self.capabilities(), [kind for kind, _ in offered], token)
        return self.start(who, request=request, kind=classification.kind, workflow=classification.workflow,
                          params={"confidence": classification.confidence}, dedupe_key=dedupe_key)

    def _offer(self, request: str, offered: list[tuple[str, str]]) -> str | None:
        """Keep a not-understood request for an hour, so a "Did you mean …?" button can start it as that kind.

        Redis is right here: a suggestion is short-lived context, and losing it loses no intent, only
        a shortcut ("ask again"). Returns the token the buttons carry, or None if Redis is away.
        """
        token = secrets.token_hex(5)
        try:
            self.services.stores.redis.set(SUGGESTION_KEY + token, json.dumps({"request": request, "offered": offered}),
                                           ex=SUGGESTION_TTL_SECONDS)
        except RedisError:
            return None
        return token

    def choose(self, who: Requester, argument: str) -> Message:
        """A "Did you mean …?" button: start the kept request as the kind the operator picked."""
        token, _, index = argument.partition(":")
        try:
            kept = self.services.stores.redis.get(SUGGESTION_KEY + token)
        except RedisError:
            kept = None
        if kept is None:
            return words.suggestion_expired()
        suggestion = json.loads(kept)
        offered = suggestion["offered"]
        if int(index) >= len(offered):
            return words.suggestion_expired()
        kind, workflow = offered[int(index)]
        return self.start(who, request=suggestion["request"], kind=kind, workflow=workflow,
                          params={"confidence": None, "chosen_by": who.identity}, dedupe_key=f"choose:{token}")

    def start(self, who: Requester, *, request: str, kind: str, workflow: str, params: dict[str, Any],
              dedupe_key: str | None = None) -> Message:
        """Write the intent and its queued run (one transaction, with their audit events), then enqueue the run."""
        with self.pool.connection() as conn, conn.transaction():
            created = self._create(conn, who, request=request, kind=kind, workflow=workflow, params=params,
                                   dedupe_key=dedupe_key)
            if created is None:
                return words.duplicate_request(intents.by_dedupe_key(conn, dedupe_key or ""))
        intent, run = created
        enqueue_advance(self.services.stores.redis, run.id)
        log.info("intent.created", intent_id=intent.id, run_id=run.id, kind=intent.kind)
        return words.accepted(intent, run, WORKFLOWS[workflow].title)

    def answer(self, who: Requester, text: str, *, dedupe_key: str | None = None) -> Message | None:
        """Take `text` as the answer to the parameter opsos asked this operator for in this conversation.

        Starts the asked kind again on the request completed with the answer, linked to the asked
        intent; its run reads the request from the top, so a reply that still lacks the value is asked
        about again. None when no question is open (never asked, answered or overtaken by a later
        request, or older than the answer window): the text is then an ordinary message.
        """
        if not self.services.policy.is_operator(who.identity):
            return self.refuse(who, "answer", {"text": text[:200]})
        since = self.services.now() - self.services.settings.answer_window
        where = {"channel": who.channel, "conversation": who.conversation, "requested_by": who.identity}
        with self.pool.connection() as conn:
            question = intents.open_question(conn, **where, since=since)
        if question is None or question.workflow not in WORKFLOWS:
            return None
        request = intents.answered_request(question.intent.request, text)
        limit = self.services.settings.max_request_chars
        if len(request) > limit:
            return self._invalid(who, f"with the request it answers it is {len(request)} characters long; "
                                      f"the limit is {limit}", text)
        with self.pool.connection() as conn, conn.transaction():
            if not intents.claim(conn, question, since=since):
                return None
            created = self._create(conn, who, request=request, kind=question.intent.kind, workflow=question.workflow,
                                   params={"confidence": None, "answers": question.intent.id}, dedupe_key=dedupe_key)
            if created is None:
                return words.duplicate_request(intents.by_dedupe_key(conn, dedupe_key or ""))
            intent, run = created
            intents.record_answer(conn, question=question, answer=intent, run_id=run.id, reply=text)
        enqueue_advance(self.services.stores.redis, run.id)
        log.info("question.answered", question=question.intent.id, intent_id=intent.id, run_id=run.id)
        return words.answer_taken(question.intent, question.missing, intent, run, WORKFLOWS[question.workflow].title)

    def _create(self, conn: Connection, who: Requester, *, request: str, kind: str, workflow: str,
                params: dict[str, Any], dedupe_key: str | None) -> tuple[intents.Intent, runs.Run] | None:
        """The intent and its queued run in the caller's transaction; None if `dedupe_key` was seen before."""
        settings = self.services.settings
        constraints = parse_constraints(request, now=self.services.now(), default_budget=settings.intent_budget_usd,
                                        default_days=settings.intent_deadline_days)
        intent = intents.create(
            conn, requested_by=who.identity, channel=who.channel, conversation=who.conversation,
            request=request, kind=kind, params=params, constraints=constraints, dedupe_key=dedupe_key,
        )
        if intent is None:
            return None
        return intent, runs.create(conn, intent_id=intent.id, workflow=workflow, actor=who.identity)

    def _invalid(self, who: Requester, reason: str, text: str) -> Message:
        with self.pool.connection() as conn, conn.transaction():
            audit.append(conn, actor=who.identity, kind="request.invalid",
                         payload={"reason": reason, "request": text[:200]})
        return words.invalid_request(reason)

    def decide(self, who: Requester, approval_id: str, decision: Decision) -> Decided:
        """Record a decision once, move the run on; a second click or a stale approval changes nothing.

        However it is made (a button, typed, the dashboard), the decision queues in its transaction an edit
        of every message carrying this approval's buttons, on every channel (see `approvals.decide`).
        """
        if not self.services.policy.is_operator(who.identity):
            return Decided(reply=self.refuse(who, f"{decision.value} approval", {"approval": approval_id}))
        try:
            with self.pool.connection() as conn, conn.transaction():
                pending = approvals.get(conn, approval_id)
                run = runs.get(conn, pending.run_id, for_update=True)
                try:
                    approval = approvals.decide(conn, approval_id, decision, identity=who.identity,
                                                channel=who.channel, intent_id=run.intent_id, now=self.services.now())
                except ApprovalExpired as expired:
                    # Caught inside the transaction so that marking the approval expired, and its audit
                    # event, commit: the click changed nothing else, but the record says it came too late.
                    return Decided(reply=words.already_decided(str(expired)))
                if run.state is RunState.AWAITING_APPROVAL:
                    event = RunEvent.APPROVE if decision is Decision.APPROVED else RunEvent.REJECT
                    reason = "" if decision is Decision.APPROVED else f"rejected by {who.identity}"
                    runs.transition(conn, run.id, event, actor=who.identity, reason=reason,
                                    payload={"approval": approval_id})
        except NotFound:
            return Decided(reply=words.invalid_request("that approval does not exist"))
        except ApprovalAlreadyDecided as error:
            with self.pool.connection() as conn:
                current = approvals.get(conn, approval_id)
            return Decided(reply=words.already_decided(str(error)), approval=current,
                           updated=words.approval_decided(current))
        except ApprovalStale as error:
            return Decided(reply=words.already_decided(str(error)))
        if decision is Decision.APPROVED:
            enqueue_advance(self.services.stores.redis, approval.run_id, queue_name="interactive")
        updated = words.approval_decided(approval)
        return Decided(reply=updated, approval=approval, updated=updated, changed=True)

    def explain(self, approval_id: str) -> Message:
        """The "Why?" button: the intent, the step, the data and the model behind the action."""
        try:
            with self.pool.connection() as conn:
                approval = approvals.get(conn, approval_id)
                run = runs.get(conn, approval.run_id)
                intent = intents.get(conn, run.intent_id)
                calls = agent_calls.for_run(conn, run.id)
        except NotFound:
            return words.invalid_request("that approval does not exist")
        cited = [c for call in calls for c in call.output.get("cited", [])]
        model = ", ".join(sorted({f"{c.model} ({c.tier} tier)" for c in calls})) or None
        return words.explanation(approval, intent, cited, model)

    def status(self, run_id: int | None = None) -> Message:
        with self.pool.connection() as conn:
            if run_id is None:
                return reports.status(conn, now=self.services.now(),
                                      budget_daily_usd=self.services.settings.budget_daily_usd)
            try:
                run = runs.get(conn, run_id)
            except NotFound:
                return words.invalid_request(f"there is no run #{run_id}")
            intent = intents.get(conn, run.intent_id)
            return reports.run_detail(conn, run, intent, WORKFLOWS[run.workflow])

    def change_run(self, who: Requester, run_id: int, event: RunEvent) -> Message:
        """Pause, resume or cancel a run for the operator. Resuming a run whose approval expired asks again."""
        if not self.services.policy.is_operator(who.identity):
            return self.refuse(who, event.value, {"run": run_id})
        try:
            with self.pool.connection() as conn, conn.transaction():
                run = runs.get(conn, run_id, for_update=True)
                if event is RunEvent.RESUME and run.state is RunState.AWAITING_APPROVAL:
                    # Nothing to resume but an expired approval: let the run ask again.
                    run = runs.transition(conn, run_id, RunEvent.PAUSE, actor=who.identity)
                run = runs.transition(conn, run_id, event, actor=who.identity, payload={"via": who.channel})
                if event is RunEvent.RESUME and run.state is RunState.AWAITING_APPROVAL:
                    run = runs.transition(conn, run_id, RunEvent.APPROVE, actor=who.identity,
                                          reason="asking again")
        except NotFound:
            return words.invalid_request(f"there is no run #{run_id}")
        except InvalidTransition as error:
            return words.invalid_request(str(error))
        if run.state in (RunState.QUEUED, RunState.RUNNING):
            enqueue_advance(self.services.stores.redis, run_id, queue_name="interactive")
        return words.run_changed(run, {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[event.value],
                                 who.identity)

    def seen(self, dedupe_key: str) -> bool:
        """Whether a platform delivery with this key already became an intent (a retry the adapter can drop)."""
        with self.pool.connection() as conn:
            return intents.by_dedupe_key(conn, dedupe_key) is not None

    def approval_messages(self, approval_id: str) -> list[outbox.OutboxItem]:
        """Every message carrying this approval's buttons (its requests, digests), with where each was delivered.

        Their edits are queued when the approval leaves pending (see `approvals.decide`); a front end reads
        this to tell a copy opsos will edit from a clicked message it has no record of.
        """
        with self.pool.connection() as conn:
            return outbox.copies(conn, approval_id)

    def post(self, who: Requester, message: Message) -> None:
        """Queue a message to a conversation (for replies that must go through the outbox, like scheduled ones)."""
        with self.pool.connection() as conn, conn.transaction():
            outbox.post(conn, channel=who.channel, conversation=who.conversation, message=message)


__all__ = ["Decided", "Operations", "OpsError", "Requester"]
