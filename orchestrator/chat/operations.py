"""The front door: `Operations` is what every chat front end calls. It holds the rules; adapters only translate.

Where a Slack `/ops` (a Telegram message, a console line) lands: `Operations.handle_text`, which reads
a command or hands the words to `intake`. Clicks land in `decide` (see `decisions`).
"""
from __future__ import annotations

import re

from psycopg_pool import ConnectionPool

from orchestrator import buttons, intents, outbox, scheduler, words
from orchestrator.approvals import Decision
from orchestrator.chat import contacts, control, decisions, intake, knowledge, leads, scheduling, signin
from orchestrator.chat.commands import Command, parse, repeatable
from orchestrator.chat.decisions import Decided
from orchestrator.chat.requester import Requester, refuse
from orchestrator.chat.routing import Classifier
from orchestrator.messages import Message
from orchestrator.runs import RunEvent
from orchestrator.schedules.records import ScheduleState
from orchestrator.services import Services
from orchestrator.startup import workflows_overview
from orchestrator.workflows.forget import FORGET

SCHEDULE_MOVES = {Command.PAUSE_SCHEDULE: ScheduleState.PAUSED, Command.RESUME_SCHEDULE: ScheduleState.ACTIVE,
                  Command.UNSCHEDULE: ScheduleState.REMOVED}


class Operations:
    def __init__(self, services: Services, classifier: Classifier) -> None:
        self.services = services
        self.classifier = classifier

    @property
    def pool(self) -> ConnectionPool:
        return self.services.stores.pool

    def capabilities(self) -> list[tuple[str, str]]:
        return intake.capabilities()

    def handle_text(self, who: Requester, text: str, *, dedupe_key: str | None = None) -> Message:
        """Anything typed to opsos: a command (status, pause 3, approve a…) or a request in words.

        A message the router does not place, soon after opsos asked for a parameter, answers it (see `intake.answer`).
        """
        command = parse(text)
        if command.command is Command.HELP:
            return words.help_message(self.capabilities())
        if not self.services.policy.is_operator(who.identity):
            return refuse(self.services, who, command.command.value, {"text": text[:200]})
        match command.command:
            case Command.STATUS:
                return self.status(int(command.argument) if command.argument else None)
            case Command.OUTREACH:
                return leads.start_outreach(self.services, who, int(command.argument))
            case Command.PAUSE | Command.RESUME | Command.CANCEL:
                return self.change_run(who, int(command.argument), RunEvent(command.command.value))
            case Command.APPROVE | Command.REJECT:
                decision = Decision.APPROVED if command.command is Command.APPROVE else Decision.REJECTED
                return self.decide(who, command.argument, decision).reply
            case Command.WHY if re.fullmatch(buttons.APPROVAL_ID, command.argument):
                return decisions.explain(self.services, command.argument)
            case Command.WHY:
                return knowledge.why(self.services, about=command.argument)
            case Command.CHOOSE:
                return intake.choose(self.services, who, command.argument)
            case Command.REMEMBER:
                return knowledge.remember(self.services, identity=who.identity, channel=who.channel,
                                          text=command.argument)
            case Command.RECALL:
                return knowledge.recall(self.services, question=command.argument)
            case Command.FORGET:
                memory_id = int(command.argument)
                return intake.start(self.services, who, request=f"forget memory #{memory_id}", kind="forget_memory",
                                    workflow=FORGET.name, params={"memory_id": memory_id})
            case Command.DIGEST:
                scheduler.send_digest_now(self.services, channel=who.channel, conversation=who.conversation)
                return words.digest_on_its_way(who.channel)
            case Command.DASHBOARD if not who.private:
                return words.signin_in_private_only()
            case Command.DASHBOARD:
                return signin.link_message(self.services, who.identity)
            case Command.REPLAY:
                return control.replay_reply(self.services, int(command.argument))
            case Command.CONTACTS:
                return contacts.overview(self.services)
            case Command.CONTACT:
                return contacts.card(self.services, command.argument)
            case Command.WORKFLOWS:
                return workflows_overview()
            case Command.SCHEDULE:
                return scheduling.propose(self.services, self.classifier, who, command.argument)
            case Command.CONFIRM:
                return scheduling.confirm(self.services, who, command.argument)
            case Command.SCHEDULES:
                return scheduling.overview(self.services)
            case Command.PAUSE_SCHEDULE | Command.RESUME_SCHEDULE | Command.UNSCHEDULE:
                return scheduling.change(self.services, who, int(command.argument), SCHEDULE_MOVES[command.command])
        return self.submit(who, command.argument, dedupe_key=dedupe_key)

    def repeatable(self, text: str, *, dedupe_key: str | None = None) -> bool:
        """Whether `handle_text(text, dedupe_key=…)` may be called again after a store error, which can come after
        its work committed: True when a second call does nothing more than the first (see `commands.repeatable`)."""
        return repeatable(parse(text), keyed=dedupe_key is not None)

    def submit(self, who: Requester, text: str, *, dedupe_key: str | None = None) -> Message:
        """A request in words: an intent and its queued run, or a "Did you mean …?" (see `intake.submit`)."""
        return intake.submit(self.services, self.classifier, who, text, dedupe_key=dedupe_key)

    def decide(self, who: Requester, approval_id: str, decision: Decision) -> Decided:
        """Record a decision once and move the run on (see `decisions.decide`)."""
        return decisions.decide(self.services, who, approval_id, decision)

    def status(self, run_id: int | None = None) -> Message:
        return control.status(self.services, run_id)

    def change_run(self, who: Requester, run_id: int, event: RunEvent) -> Message:
        return control.change_run(self.services, who, run_id, event)

    def seen(self, dedupe_key: str) -> bool:
        """Whether a platform delivery with this key already became an intent (a retry the adapter can drop)."""
        with self.pool.connection() as conn:
            return intents.by_dedupe_key(conn, dedupe_key) is not None

    def approval_messages(self, approval_id: str) -> list[outbox.OutboxItem]:
        """Every message carrying this approval's buttons, with where each was delivered (see `decisions`)."""
        return decisions.approval_messages(self.services, approval_id)

    def post(self, who: Requester, message: Message) -> None:
        """Queue a message to a conversation (for replies that must go through the outbox, like scheduled ones)."""
        with self.pool.connection() as conn, conn.transaction():
            outbox.post(conn, channel=who.channel, conversation=who.conversation, message=message)
