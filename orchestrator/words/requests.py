"""The replies to a request or a command: help, not understood, accepted, refused, asked for a detail."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from orchestrator import buttons
from orchestrator.intents import Intent
from orchestrator.messages import Action, Fact, Message, MessageKind, Section
from orchestrator.policy import Risk
from orchestrator.runs import Run
from orchestrator.words.common import money, utc, within

COMMANDS_HELP = [
    ("<request>", "ask for something, e.g. “launch a win-back campaign to lapsed subscribers”"),
    ("status", "what is running, what waits for you, what it cost"),
    ("status <run>", "one run in detail"),
    ("pause <run> / resume <run> / cancel <run>", "take over a run, or hand it back"),
    ("approve <id> / reject <id> / why <id>", "decide an approval (the buttons do the same)"),
    ("remember <subject>: <fact>", "keep a fact for the agents, e.g. “remember Ana Souza: prefers email”"),
    ("recall <question>", "what I remember, with where each memory came from"),
    ("forget <memory>", "redact a memory (after your approval)"),
    ("contacts / contact <name, address or id>", "your customers: how many and the latest, or one contact's card"),
    ("every <when> <request>", "a schedule, e.g. “every Monday at 9 write this week's newsletter” or a cron string "
                               "“0 9 * * 1 …”; shown back for you to confirm"),
    ("schedules / pause schedule <n> / resume schedule <n> / unschedule <n>", "your schedules, and changing one"),
    ("workflows", "the workflows opsos runs and where each comes from (Python or a workflow file)"),
    ("why <customer or action>", "the chain behind an action: intent, approval, memories, audit events"),
    ("replay <run>", "rebuild a run from the audit log and show where the tables disagree with it"),
    ("help", "this list"),
]


def help_message(capabilities: Iterable[tuple[str, str]]) -> Message:
    return Message(
        kind=MessageKind.HELP,
        title="Here is what I can do",
        sections=[
            Section(title="Requests I understand", facts=[Fact(label=name, value=text) for name, text in capabilities]),
            Section(title="Commands", facts=[Fact(label=cmd, value=text) for cmd, text in COMMANDS_HELP]),
        ],
    )


def not_understood(request: str, capabilities: Iterable[tuple[str, str]], closest: list[str] | None = None,
                   suggestion: str | None = None) -> Message:
    """The answer to a request below the router's confidence: no guess, the closest kinds as buttons."""
    hint = f" Did you mean {' or '.join(k.replace('_', ' ') for k in closest)}?" if closest else ""
    message = help_message(capabilities)
    message.kind = MessageKind.REFUSAL
    message.title = "I don't know how to do that yet, so nothing was queued."
    message.text = f"“{request[:120]}” matched none of my workflows.{hint}"
    if suggestion and closest:
        message.actions = [Action(label=f"Did you mean: {kind.replace('_', ' ')}?", value=buttons.choose(suggestion, n))
                           for n, kind in enumerate(closest)]
    return message


def suggestion_expired() -> Message:
    return Message(kind=MessageKind.NOTICE, title="That suggestion has expired; please ask again in your own words.")


def invalid_request(reason: str) -> Message:
    return Message(kind=MessageKind.REFUSAL, title=f"I can't take that request: {reason}. Nothing was queued.")


def not_authorised(identity: str) -> Message:
    return Message(
        kind=MessageKind.REFUSAL,
        title="Sorry, only this workspace's operator can ask me to act.",
        text=f"Your identity ({identity}) is not on the operator list; this attempt was recorded.",
    )


def accepted(intent: Intent, run: Run, workflow_title: str) -> Message:
    return Message(
        kind=MessageKind.ACK,
        title=f"On it: intent #{intent.id} → run #{run.id} ({workflow_title}).",
        sections=[Section(facts=[
            Fact(label="Goal", value=intent.request),
            Fact(label="Budget", value=money(intent.budget_usd)),
            Fact(label="Deadline", value=f"{utc(intent.deadline)}"),
            *([Fact(label="Care", value="high: every outside action waits for your approval")]
              if intent.risk is Risk.HIGH else []),
        ])],
        run_id=run.id,
    )


def duplicate_request(intent: Intent) -> Message:
    return Message(kind=MessageKind.ACK, title=f"Already on it: that request is intent #{intent.id}.")


def stores_unavailable() -> Message:
    return Message(kind=MessageKind.REFUSAL,
                   title="I couldn't take that just now: my database is not answering. Nothing was queued; "
                         "please send it again in a minute.")


def stores_unavailable_unsure() -> Message:
    return Message(kind=MessageKind.REFUSAL,
                   title="My database stopped answering while I handled that, so I can't tell whether it was done. "
                         "Please check (status) before you send it again.")


def still_working() -> Message:
    return Message(kind=MessageKind.ACK, title="Got it — I'm writing that down; the confirmation follows in a moment.")


def needs_run(command: str) -> Message:
    return Message(kind=MessageKind.REFUSAL,
                   title=f"Say which run to {command}, e.g. “{command} 3”. “status” lists the live runs.")


def unknown_button() -> Message:
    return Message(kind=MessageKind.NOTICE, title="That button no longer means anything to me; nothing changed.")


def digest_on_its_way(channel: str) -> Message:
    return Message(kind=MessageKind.NOTICE, title=f"Your digest is on its way to {channel}.")


def signin_in_private_only() -> Message:
    return Message(kind=MessageKind.REFUSAL, title="I send the dashboard sign-in link only in a direct message.",
                   text="It signs in as you, and here others could click it first. Ask me for “dashboard” in a "
                        "DM (Slack) or our private chat (Telegram).")


def dashboard_link(url: str, expires_at: datetime) -> Message:
    return Message(
        kind=MessageKind.NOTICE,
        title="Your dashboard sign-in link (works once):",
        text=f"{url}\nIt expires at {utc(expires_at)}. Do not forward it: it signs in as you.",
    )


# A reply to "Which …?" per parameter, worded so that even the offline tier's rules read it (“about …”).
ANSWER_EXAMPLES = {"customer": "ana@example.com", "recipient": "ana@example.com", "period": "March",
                   "topic": "about pricing for solo founders"}


def params_missing(intent: Intent, title: str, missing: list[str], *, reply_within: timedelta,
                   detail: str = "") -> Message:
    """A required parameter the request did not give: ask for it, do nothing until then; a reply answers it."""
    names = " and ".join(name.replace("_", " ") for name in missing)
    example = ANSWER_EXAMPLES.get(missing[0]) if len(missing) == 1 else None
    return Message(
        kind=MessageKind.NOTICE,
        title=f"Which {names}? I need it for the {title} and won't guess.",
        text=(f"{detail + ' ' if detail else ''}Nothing was done for “{intent.request[:120]}”. "
              f"Just reply with the {names}{f' (e.g. “{example}”)' if example else ''} within {within(reply_within)} "
              f"and I'll carry on; after that, ask again in full."),
    )


def answer_taken(question: Intent, missing: list[str], intent: Intent, run: Run, workflow_title: str) -> Message:
    """The reply to an answer: which question it answered, and the request it completed."""
    names = " and ".join(name.replace("_", " ") for name in missing) or "missing detail"
    message = accepted(intent, run, workflow_title)
    message.title = (f"Taken as the {names} for intent #{question.id}: "
                     f"intent #{intent.id} → run #{run.id} ({workflow_title}).")
    message.text = f"Not what you meant? Say “cancel {run.id}” and ask in full."
    return message
