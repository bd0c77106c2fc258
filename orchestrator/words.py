"""Every sentence opsos says to the operator, in one place, so tone and wording stay consistent and testable."""
from __future__ import annotations

from collections.abc import Iterable

from orchestrator.approvals import Approval
from orchestrator.intents import Intent
from orchestrator.messages import Action, Fact, Message, MessageKind, Section, Style
from orchestrator.runs import Run

COMMANDS_HELP = [
    ("<request>", "ask for something, e.g. “launch a win-back campaign to lapsed subscribers”"),
    ("status", "what is running, what waits for you, what it cost"),
    ("status <run>", "one run in detail"),
    ("pause <run> / resume <run> / cancel <run>", "take over a run, or hand it back"),
    ("approve <id> / reject <id> / why <id>", "decide an approval (the buttons do the same)"),
    ("help", "this list"),
]


def money(amount: float) -> str:
    return f"${amount:,.2f}"


def help_message(capabilities: Iterable[tuple[str, str]]) -> Message:
    return Message(
        kind=MessageKind.HELP,
        title="Here is what I can do",
        sections=[
            Section(title="Requests I understand", facts=[Fact(label=name, value=text) for name, text in capabilities]),
            Section(title="Commands", facts=[Fact(label=cmd, value=text) for cmd, text in COMMANDS_HELP]),
        ],
    )


def not_understood(request: str, capabilities: Iterable[tuple[str, str]], closest: list[str] | None = None) -> Message:
    hint = f" The closest I know: {', '.join(closest)}." if closest else ""
    message = help_message(capabilities)
    message.kind = MessageKind.REFUSAL
    message.title = "I don't know how to do that yet, so nothing was queued."
    message.text = f"“{request[:120]}” matched none of my workflows.{hint}"
    return message


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
            Fact(label="Deadline", value=f"{intent.deadline:%Y-%m-%d %H:%M} UTC"),
        ])],
        run_id=run.id,
    )


def duplicate_request(intent: Intent) -> Message:
    return Message(kind=MessageKind.ACK, title=f"Already on it: that request is intent #{intent.id}.")


def approval_actions(approval_id: str) -> list[Action]:
    return [
        Action(label="Approve", value=f"approve:{approval_id}", style=Style.PRIMARY),
        Action(label="Reject", value=f"reject:{approval_id}", style=Style.DANGER),
        Action(label="Why?", value=f"why:{approval_id}"),
    ]


def approval_request(approval: Approval, intent: Intent) -> Message:
    ask = approval.request
    return Message(
        kind=MessageKind.APPROVAL_REQUEST,
        title=f"Approval needed for run #{approval.run_id}: {ask.what}",
        text=ask.why,
        sections=[
            Section(facts=[
                *ask.facts,
                Fact(label="Estimated cost", value=money(ask.estimated_cost_usd)),
                Fact(label="Expires", value=f"{approval.expires_at:%Y-%m-%d %H:%M} UTC"),
            ]),
            Section(title="Preview", text=ask.preview),
        ],
        actions=approval_actions(approval.id),
        run_id=approval.run_id,
        approval_id=approval.id,
    )


def approval_decided(approval: Approval) -> Message:
    verb = "Approved" if approval.state == "approved" else "Rejected"
    return Message(
        kind=MessageKind.APPROVAL_DECIDED,
        title=f"{verb}: {approval.request.what}",
        text=f"{verb} by {approval.decided_by} via {approval.decided_via} at {approval.decided_at:%Y-%m-%d %H:%M} UTC.",
        run_id=approval.run_id,
        approval_id=approval.id,
    )


def already_decided(detail: str) -> Message:
    return Message(kind=MessageKind.NOTICE, title=f"Nothing changed: this approval was {detail}.")


def explanation(approval: Approval, intent: Intent, cited: list[str], model: str | None) -> Message:
    facts = [
        Fact(label="Intent", value=f"#{intent.id} “{intent.request}” from {intent.requested_by} via {intent.channel}"),
        Fact(label="Step", value=approval.step),
        Fact(label="Action digest", value=approval.action_digest[:16]),
    ]
    if model:
        facts.append(Fact(label="Drafted by", value=model))
    if cited:
        facts.append(Fact(label="Data used", value=", ".join(cited)))
    return Message(
        kind=MessageKind.EXPLANATION,
        title=f"Why I ask: {approval.request.what}",
        text=approval.request.why,
        sections=[Section(facts=facts), Section(title="Preview", text=approval.request.preview)],
        actions=approval_actions(approval.id)[:2] if approval.state == "pending" else [],
        run_id=approval.run_id,
        approval_id=approval.id,
    )


def payment_failed(contact_name: str, amount: str, attempts: int, reason: str, compensation: str) -> Message:
    return Message(
        kind=MessageKind.ALERT,
        title=f"Payment failed: {contact_name} ({amount})",
        text=f"Declined {attempts} times ({reason}). Compensating step: {compensation}.",
    )


def run_failed(run: Run, error: str, compensations: list[str]) -> Message:
    undone = "; ".join(compensations) if compensations else "nothing needed undoing"
    return Message(
        kind=MessageKind.ALERT,
        title=f"Run #{run.id} stopped: {error}",
        text=f"Compensation: {undone}. Say “resume {run.id}” after fixing the cause, or “cancel {run.id}”.",
        run_id=run.id,
    )


def run_changed(run: Run, verb: str, actor: str) -> Message:
    return Message(kind=MessageKind.NOTICE, title=f"Run #{run.id} {verb} by {actor}; it is now {run.state}.",
                   run_id=run.id)
