"""What the operator is told about a run: stopped, changed, at risk of its deadline, a payment that failed."""
from __future__ import annotations

from datetime import datetime, tzinfo

from orchestrator import buttons
from orchestrator.intents import Intent
from orchestrator.messages import Action, Message, MessageKind, Section, Style
from orchestrator.runs import Run


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


def run_actions(run_id: int, *, resume: bool = True) -> list[Action]:
    """Resume / Cancel buttons for a run."""
    actions = [Action(label=f"Resume #{run_id}", value=buttons.resume(run_id), style=Style.PRIMARY)] if resume else []
    return [*actions, Action(label=f"Cancel #{run_id}", value=buttons.cancel(run_id), style=Style.DANGER)]


def sla_at_risk(intent: Intent, run_id: int, state: str, *, now: datetime, zone: tzinfo) -> Message:
    left = intent.deadline - now
    when = f"{intent.deadline.astimezone(zone):%a %d %b %H:%M}"
    if left.total_seconds() <= 0:
        title = f"Intent #{intent.id} missed its deadline ({when}); run #{run_id} is still {state}."
    else:
        hours = int(left.total_seconds() // 3600)
        title = f"Intent #{intent.id} is at risk: its deadline is in {hours}h ({when}) and run #{run_id} is {state}."
    return Message(kind=MessageKind.ALERT, title=title, text=f"“{intent.request[:160]}”",
                   actions=run_actions(run_id, resume=state == "paused"), run_id=run_id)


def post_ready(channel: str, title: str, body: str) -> Message:
    return Message(kind=MessageKind.NOTICE, title=f"Ready to publish ({channel}): {title}",
                   sections=[Section(text=body)])
