"""What the operator is told about Stripe's events: a failed payment, a new subscriber, one who left, and the
events opsos recorded without acting on them."""
from __future__ import annotations

from datetime import datetime

from orchestrator.approvals import ApprovalRequest
from orchestrator.messages import Fact, Message, MessageKind
from orchestrator.words.common import money, utc

REQUESTER = "stripe:webhook"


def amount(cents: int, currency: str = "usd") -> str:
    return money(cents / 100) if currency.lower() == "usd" else f"{cents / 100:,.2f} {currency.upper()}"


# -- the intents' requests: what the run was "asked", as the approval and the run report show it --------------

def dunning_request(name: str, cents: int, currency: str, attempt: int, final: bool) -> str:
    last = ", Stripe's last attempt" if final else ""
    return f"Stripe: {name}'s payment of {amount(cents, currency)} failed (attempt {attempt}{last})"


def fulfilment_request(name: str, email: str, plan: str) -> str:
    return f"Stripe: new {plan} subscription for {name} <{email}>: provision the account and send a welcome"


def lapse_request(name: str) -> str:
    return f"Stripe: {name}'s subscription was cancelled"


# -- what the runs say ----------------------------------------------------------------------------------------

def payment_failed_notice(name: str, cents: int, currency: str, attempt: int, next_attempt: datetime | None) -> Message:
    then = (f"Stripe tries again {utc(next_attempt)}; access stays on until its last attempt."
            if next_attempt is not None else
            "That was Stripe's last attempt: I am pausing their access (the dunning run says when it is done).")
    return Message(kind=MessageKind.ALERT,
                   title=f"Payment failed: {name}, {amount(cents, currency)} (attempt {attempt})", text=then)


def pause_request(name: str, cents: int, currency: str, attempt: int) -> ApprovalRequest:
    return ApprovalRequest(
        what=f"Pause {name}'s access?",
        why=f"Stripe's last attempt to collect {amount(cents, currency)} failed (attempt {attempt}); "
            f"policy asks you before access changes.",
        facts=[Fact(label="Customer", value=name), Fact(label="Unpaid", value=amount(cents, currency))],
    )


def paused_summary(name: str, paused: bool, next_attempt: str | None) -> str:
    if paused:
        return f"{name}'s access paused after Stripe's last attempt"
    return f"access kept: Stripe retries {next_attempt}" if next_attempt else "access kept"


def provision_request(name: str, email: str, plan: str) -> ApprovalRequest:
    return ApprovalRequest(
        what=f"Provision a {plan} account for {name}?",
        why="They just subscribed through Stripe; policy asks you before access changes.",
        facts=[Fact(label="Customer", value=f"{name} <{email}>"), Fact(label="Plan", value=plan)],
    )


def welcome_email(name: str, plan: str) -> tuple[str, str]:
    first = name.split()[0] if name.strip() else "there"
    return (f"Welcome, {first}!",
            f"Hi {first},\n\nThank you for subscribing ({plan}). Your account is ready.\n\n"
            f"Reply to this email if anything is unclear.\n")


def welcome_request(name: str, email: str, subject: str, body: str) -> ApprovalRequest:
    return ApprovalRequest(
        what=f"Send {name} the welcome email?",
        why="They just subscribed through Stripe and their account is provisioned; policy asks you before "
            "emailing a customer.",
        facts=[Fact(label="To", value=email), Fact(label="Subject", value=subject)],
        preview=body,
    )


def provisioned_summary(name: str, created: bool) -> str:
    return f"{'new account for' if created else 'account reactivated for'} {name}"


def lapsed_notice(name: str) -> Message:
    return Message(kind=MessageKind.NOTICE, title=f"{name}'s subscription was cancelled: marked lapsed.",
                   text="A win-back candidate: say “launch a win-back campaign to lapsed subscribers” to make "
                        "them an offer.")


# -- events recorded without an intent ------------------------------------------------------------------------

def renewed(name: str, cents: int) -> Message:
    return Message(kind=MessageKind.NOTICE, title=f"Stripe: {name} paid {money(cents / 100)} (a renewal).")


def out_of_order(event_type: str, event_id: str, created: datetime, about: str, newest: datetime) -> Message:
    return Message(
        kind=MessageKind.NOTICE,
        title=f"Stripe event out of order, recorded and not applied: {event_type} ({event_id})",
        text=f"It was created {utc(created)}, before the last event I applied for {about} ({utc(newest)}), "
             f"so it would set back what is already known.",
    )


def unknown_customer(event_type: str, event_id: str, customer: str | None, email: str | None) -> Message:
    who = " ".join(part for part in (customer, f"<{email}>" if email else None) if part) or "no customer named"
    return Message(
        kind=MessageKind.ALERT,
        title=f"Stripe event for a customer I don't know, recorded: {event_type} ({event_id})",
        text=f"Customer: {who}. Nothing was done; add them to your contacts if they are yours.",
    )


def not_handled(event_type: str, event_id: str) -> Message:
    return Message(kind=MessageKind.NOTICE,
                   title=f"Stripe event recorded: {event_type} ({event_id}); I have no rule for it, nothing was done.")


def unreadable(event_type: str, event_id: str, why: str) -> Message:
    return Message(
        kind=MessageKind.ALERT,
        title=f"Stripe event I could not read, recorded: {event_type or 'no type'} ({event_id})",
        text=f"It was signed by Stripe but does not have the shape I expect ({why}), so nothing was done. It is kept "
             f"as Stripe sent it; check the event in Stripe's dashboard (Developers → Events) and act on it there.",
    )


def dead(event_type: str, event_id: str, attempts: int, error: str) -> Message:
    return Message(
        kind=MessageKind.ALERT,
        title=f"Stripe event given up on after {attempts} failed attempts: {event_type} ({event_id})",
        text=f"Handling it failed every time, last with: {error[:300]}. It is kept and no longer retried; once the "
             f"cause is fixed, `opsos stripe retry-dead {event_id}` tries it again.",
    )


def dead_retried(event_ids: list[str]) -> str:
    if not event_ids:
        return "No dead Stripe events to retry."
    return f"Queued again with a fresh allowance of attempts: {', '.join(event_ids)}."
