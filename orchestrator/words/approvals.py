"""How an approval reads: the ask with its buttons, its outcome once decided, why it is asked."""
from __future__ import annotations

from pydantic import BaseModel

from connectors import (
    AccessChanged,
    Categorised,
    PaymentReceipt,
    Provisioned,
    RefundReceipt,
    SentEmail,
    SubscriptionChanged,
)
from orchestrator import buttons
from orchestrator.approvals import Approval, ApprovalRequest, ApprovalState
from orchestrator.intents import Intent
from orchestrator.messages import Action, Fact, Message, MessageKind, Section, Style
from orchestrator.words.common import money, utc


def approval_actions(approval_id: str) -> list[Action]:
    return [
        Action(label="Approve", value=buttons.approve(approval_id), style=Style.PRIMARY),
        Action(label="Reject", value=buttons.reject(approval_id), style=Style.DANGER),
        Action(label="Why?", value=buttons.why(approval_id)),
    ]


def approval_request(approval: Approval, intent: Intent) -> Message:
    ask = approval.request
    needed = "Approval needed again" if ask.supersedes else "Approval needed"
    return Message(
        kind=MessageKind.APPROVAL_REQUEST,
        title=f"{needed} for run #{approval.run_id}: {ask.what}",
        text=ask.why,
        sections=[
            Section(facts=[
                *ask.facts,
                Fact(label="Estimated cost", value=money(ask.estimated_cost_usd)),
                Fact(label="Expires", value=f"{utc(approval.expires_at)}"),
            ]),
            Section(title="Preview", text=ask.preview),
        ],
        actions=approval_actions(approval.id),
        run_id=approval.run_id,
        approval_id=approval.id,
    )


def approval_decided(approval: Approval, *, withdrawn: str | None = None) -> Message:
    """How an approval that left pending reads: who decided it, via what and when; or that it expired, was
    replaced, or was withdrawn because its run ended (`withdrawn` says how)."""
    what = approval.request.what
    if withdrawn is not None:
        title, text = f"Withdrawn: {what}", withdrawn
    elif approval.state is ApprovalState.EXPIRED:
        title = f"Expired: {what}"
        text = (f"Nobody decided by {utc(approval.expires_at)}; "
                f"say “resume {approval.run_id}” to ask again.")
    elif approval.state is ApprovalState.VOID:
        title = f"Replaced: {what}"
        text = "The action changed after this was asked; a new approval was requested."
    else:
        verb = "Approved" if approval.state is ApprovalState.APPROVED else "Rejected"
        title = f"{verb}: {what}"
        text = (f"{verb} by {approval.decided_by} via {approval.decided_via} "
                f"at {utc(approval.decided_at)}.")
    return Message(kind=MessageKind.APPROVAL_DECIDED, title=title, text=text, run_id=approval.run_id,
                   approval_id=approval.id)


CHANGED = "Changed since you approved"


def asked_again(ask: ApprovalRequest, approved: Approval) -> ApprovalRequest:
    """The ask for an action that changed after the operator approved it and before it ran: it says that the
    earlier approval lets nothing run any more, and what changed, line by line as the operator saw it."""
    before = {fact.label: fact.value for fact in approved.request.facts if fact.label != CHANGED}
    now = {fact.label: fact.value for fact in ask.facts if fact.label != CHANGED}
    changes = [f"{label} was: {value}" for label, value in before.items() if now.get(label) != value]
    changes += [f"{label} is new" for label in now if label not in before]
    if ask.preview != approved.request.preview:
        changes.append("the text in the preview changed")
    when = f" at {utc(approved.decided_at)}" if approved.decided_at else ""
    return ask.model_copy(update={
        "supersedes": approved.id,
        "why": f"You approved this{when}, but it changed before it ran, so that approval lets nothing run. "
               + ask.why,
        "facts": [*ask.facts, Fact(label=CHANGED,
                                   value="\n".join(changes) or "details not among the lines above")],
    })


def withdrawn(run_id: int, run_outcome: str) -> str:
    """Why an approval was withdrawn: its run ended (cancelled, failed, …) before anyone decided it."""
    return f"Run #{run_id} was {run_outcome}; there is nothing left to decide."


def outcome(decisions: list[Message]) -> Section:
    """The lines added under a message whose approval buttons were taken off: one per approval that left pending."""
    return Section(title="Outcome", text="\n".join(f"{decision.title} — {decision.text}" for decision in decisions))


def already_decided(detail: str) -> Message:
    return Message(kind=MessageKind.NOTICE, title=f"Nothing changed: {detail}.")


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


def digest_approval_actions(approval_id: str, run_id: int) -> list[Action]:
    """The approval buttons inside the digest, named by run, since several sit side by side."""
    return [
        Action(label=f"Approve #{run_id}", value=buttons.approve(approval_id), style=Style.PRIMARY),
        Action(label=f"Reject #{run_id}", value=buttons.reject(approval_id), style=Style.DANGER),
    ]


def reason_request(*, step: str, agent: str, model: str, estimate_usd: float, intent: Intent) -> ApprovalRequest:
    return ApprovalRequest(
        what=f"Use the reasoning model ({model}) for “{step}”?",
        why=(f"Intent #{intent.id} asks: “{intent.request}”. Reasoning-tier calls cost more, so each one is "
             f"approved. The {agent} agent would run once, for about {money(estimate_usd)}."),
        estimated_cost_usd=estimate_usd,
        facts=[Fact(label="Agent", value=agent), Fact(label="Model", value=model)],
    )


SUBSCRIPTION_VERBS = {"pause_collection": "pause billing of", "resume_collection": "resume billing of",
                      "cancel_subscription": "cancel"}


def action_line(action: dict, executes: dict | None = None) -> str:
    """One proposed action in a line, as the operator reads it in an approval or a report; with `executes` (what
    its connector is handed, resolved from the records) the line names what only the records know: the address."""
    kind = action.get("type")
    if kind == "send_email":
        at = f" at {executes['to']}" if executes else ""
        return f"email {action['to']}{at}: “{action['subject']}”"
    if kind == "refund":
        return f"refund {money(action['amount_cents'] / 100)} to {action['customer']} (charge {action['charge_key']})"
    if kind == "charge":
        return f"charge {action['customer']} {money(action['amount_cents'] / 100)}"
    if kind in ("pause_access", "resume_access"):
        return f"{kind.split('_')[0]} {action['customer']}'s access"
    if kind in SUBSCRIPTION_VERBS:
        return f"{SUBSCRIPTION_VERBS[kind]} {action.get('customer', '')}'s Stripe subscription {action['subscription']}"
    if kind == "provision_account":
        return f"provision an account for {action['name']} <{action['email']}>"
    if kind == "post_content":
        return f"{action['channel']} post “{action['title']}”"
    if kind == "categorise":
        return f"transaction {action['transaction_id']} → {action['category']}"
    return str(kind)


POST_HANDED_OVER = "handed to you to publish"


def action_outcome(result: BaseModel) -> str:
    """What a connector's result means for the operator, in a few words after the action's line."""
    match result:
        case SentEmail(to=to, duplicate=duplicate):
            return f"sent to {to}" + (" (already sent)" if duplicate else "")
        case PaymentReceipt(amount_cents=cents, duplicate=duplicate):
            return f"{'already charged' if duplicate else 'charged'} {money(cents / 100)}"
        case RefundReceipt(amount_cents=cents, duplicate=duplicate):
            return f"{'already refunded' if duplicate else 'refunded'} {money(cents / 100)}"
        case AccessChanged(access=access, duplicate=duplicate):
            return f"access {'already ' if duplicate else ''}{access}"
        case Provisioned(duplicate=duplicate):
            return "account already provisioned" if duplicate else "account provisioned"
        case SubscriptionChanged(status=status, collection_paused=paused, duplicate=duplicate):
            state = "cancelled" if status == "canceled" else ("billing paused" if paused else "billing on")
            return ("already " if duplicate else "") + state
        case Categorised(changed=changed, duplicate=duplicate):
            return "categorised" if changed and not duplicate else "already categorised"
    raise TypeError(f"no words for a {type(result).__name__}")


def proposal_request(*, title: str, lines: list[str], bodies: list[str], rationale: str, intent: Intent,
                     refused: list[str]) -> ApprovalRequest:
    """The ask for the actions a specialist proposed: one line each (`action_line`), the texts they send."""
    count = len(lines)
    facts = [Fact(label=f"{i}.", value=line) for i, line in enumerate(lines, start=1)]
    if refused:
        facts.append(Fact(label="Left out", value="; ".join(refused)))
    preview = "\n\n".join(body for body in bodies if body)[:1500]
    return ApprovalRequest(
        what=f"{title}: {count} action{'s' if count != 1 else ''} need your approval",
        why=f"Intent #{intent.id} asks: “{intent.request}”. {rationale}",
        facts=facts,
        preview=preview,
    )


def forget_request(memory_id: int, subject: str, preview: str) -> tuple[str, str]:
    return (f"Forget memory #{memory_id} about {subject}",
            f"The text is redacted and its embedding dropped; a tombstone and an audit event remain. "
            f"It reads: “{preview[:200]}”")
