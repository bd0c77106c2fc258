"""The win-back workflow of a subscription business: find lapsed subscribers, draft, approve, email, collect.

"Lapsed" subscribers are those whose renewal failed; they keep access during a grace period. The
campaign emails them an offer, then retries their renewal at the offered price. A renewal that is
still declined after the retry policy is reported to the operator, and its compensating action
ends the grace period: the subscriber's access is paused.
"""
from __future__ import annotations

from typing import Any

from agents import CampaignDraft, campaign_agent
from connectors import AccessChange, ActionDeclined, Charge, Contact, OutgoingEmail, with_retries
from orchestrator import words
from orchestrator.approvals import ApprovalRequest
from orchestrator.keys import action_key
from orchestrator.messages import Fact
from orchestrator.policy import Effect
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.model import Step, Workflow
from orchestrator.workflows.snapshot import Gathered

DISCOUNT_PERCENT = 30
DISCOUNT_MONTHS = 3


def _contacts(ctx: StepContext) -> list[Contact]:
    return [Contact.model_validate(c) for c in ctx.results["select_audience"]["contacts"]]


def select_audience(ctx: StepContext) -> dict[str, Any]:
    contacts = ctx.services.crm.segment("lapsed")
    return {"contacts": [c.model_dump(mode="json") for c in contacts], "segment": "lapsed"}


def draft_campaign(ctx: StepContext) -> dict[str, Any]:
    contacts = _contacts(ctx)

    def gather() -> Gathered:
        # What the agent may use beyond the intent and conversation, with ids it must cite.
        return Gathered(facts={
            "business": ctx.intent.params.get("business", "the newsletter"),
            "discount_percent": DISCOUNT_PERCENT,
            "discount_months": DISCOUNT_MONTHS,
            "audience": {
                "segment": "lapsed",
                "count": len(contacts),
                "ids": [c.id for c in contacts],
                "plans": sorted({c.plan for c in contacts}),
            },
        })

    draft = ctx.agent(campaign_agent, ctx.snapshot(gather=gather))
    ctx.cite(draft.get("cited", []))
    return draft


def _first_name(contact: Contact) -> str:
    return contact.name.split()[0] if contact.name.strip() else "there"


def _emails(ctx: StepContext) -> list[tuple[Contact, OutgoingEmail]]:
    draft = CampaignDraft.model_validate(ctx.results["draft_campaign"])
    sender = ctx.services.settings.email_from
    return [
        (
            contact,
            OutgoingEmail(
                to=contact.email,
                subject=draft.subject.replace("{first_name}", _first_name(contact)),
                body=draft.body.replace("{first_name}", _first_name(contact)),
                sender=sender,
            ),
        )
        for contact in _contacts(ctx)
    ]


def send_emails(ctx: StepContext) -> dict[str, Any]:
    emails = _emails(ctx)
    if not emails:
        return {"sent": [], "count": 0, "repeats_skipped": 0}
    draft = CampaignDraft.model_validate(ctx.results["draft_campaign"])
    first = emails[0][1] if emails else None
    ctx.require_approval(
        effect=Effect.EMAIL_CUSTOMERS,
        # The approval is bound to exactly these rendered emails: any change asks again.
        action={"emails": [email.model_dump() for _, email in emails]},
        ask=ApprovalRequest(
            what=f"Email {len(emails)} lapsed subscribers the offer “{draft.offer}”",
            why=(f"Intent #{ctx.intent.id} asks: “{ctx.intent.request}”. {draft.rationale}"),
            facts=[
                Fact(label="Recipients", value=", ".join(c.name for c, _ in emails) or "nobody"),
                Fact(label="Subject", value=first.subject if first else "—"),
                Fact(label="Sent from", value=ctx.services.settings.email_from),
            ],
            estimated_cost_usd=0.0,
            preview=first.body if first else "",
        ),
    )
    # The emails carry the draft, so they rest on the memories the draft cited.
    ctx.cite(ctx.results["draft_campaign"].get("cited", []))
    sent = []
    for contact, email in emails:
        key = ctx.action_key(contact.id)
        ctx.link_action(key)
        sent.append(ctx.services.email.execute(action=email, key=key))
    return {
        "sent": [s.model_dump() for s in sent],
        "count": len(sent),
        "repeats_skipped": sum(1 for s in sent if s.duplicate),
    }


def _discounted(contact: Contact) -> int:
    return round(contact.monthly_cents * (100 - DISCOUNT_PERCENT) / 100)


def collect_renewals(ctx: StepContext) -> dict[str, Any]:
    contacts = _contacts(ctx)
    if not contacts:
        return {"collected": [], "paused": [], "collected_cents": 0}
    # Renewals are pre-authorised by the subscription, so policy lets them run; a careful (high-risk) intent
    # asks first, bound to exactly these charges.
    charges = [{"customer": contact.id, "amount_cents": _discounted(contact)} for contact in contacts]
    ctx.require_approval(effect=Effect.CHARGE, action={"charges": charges},
                         ask=words.renewals_request(len(charges), sum(c["amount_cents"] for c in charges) / 100))
    collected: list[dict[str, Any]] = []
    paused: list[dict[str, Any]] = []
    for contact in contacts:
        amount = _discounted(contact)
        key = ctx.action_key(contact.id)
        ctx.link_action(key)

        def attempt(number: int, contact: Contact = contact, amount: int = amount, key: str = key):
            return ctx.services.payments.execute(
                action=Charge(customer=contact.id, amount_cents=amount, description="win-back renewal"), key=key
            )

        def failed(number: int, error: Exception, contact: Contact = contact) -> None:
            ctx.record("payment.attempt_failed", {"customer": contact.id, "attempt": number, "error": str(error)})

        try:
            receipt = with_retries(attempt, ctx.services.payment_retry, on_failure=failed)
        except ActionDeclined as declined:
            pause_key = action_key(ctx.run.id, "pause_access", contact.id)
            ctx.link_action(pause_key)
            change = ctx.services.crm.execute(
                action=AccessChange(contact_id=contact.id, access="paused"), key=pause_key
            )
            compensation = f"paused {contact.name}'s access (grace period ended)"
            ctx.notify(
                words.payment_failed(contact.name, words.money(amount / 100),
                                     ctx.services.payment_retry.attempts, declined.reason, compensation),
                event="payment.failed",
                payload={"customer": contact.id, "reason": declined.reason, "compensation": compensation,
                         "change": change.model_dump()},
                dedupe=f"payment_failed:{contact.id}",
            )
            paused.append({"customer": contact.id, "name": contact.name, "reason": declined.reason,
                           "amount_cents": amount, "access": change.access})
            continue
        collected.append({"customer": contact.id, "name": contact.name, "amount_cents": receipt.amount_cents,
                          "ledger_id": receipt.ledger_id, "key": receipt.key})
    return {
        "collected": collected,
        "paused": paused,
        "collected_cents": sum(c["amount_cents"] for c in collected),
    }


def refund_renewals(ctx: StepContext, result: dict[str, Any]) -> dict[str, Any]:
    """Compensation when the run fails: refund what this step collected, found by key, so a step that broke
    half-way (and stored no result) is undone as surely as a finished one."""
    refunds = [ctx.services.payments.compensate(key=ctx.action_key(contact.id)) for contact in _contacts(ctx)]
    return {"refunds": [r for r in refunds if r.startswith("refunded")]}


def _summarise_audience(result: dict[str, Any]) -> str:
    return f"{len(result['contacts'])} lapsed subscribers"


def _summarise_draft(result: dict[str, Any]) -> str:
    return f"“{result['subject'].replace('{first_name}', '‹first name›')}” ({result['offer']})"


def _summarise_emails(result: dict[str, Any]) -> str:
    repeats = f", {result['repeats_skipped']} already sent before a restart" if result["repeats_skipped"] else ""
    return f"{result['count']} emails sent{repeats}"


def _summarise_renewals(result: dict[str, Any]) -> str:
    paused = ", ".join(p["name"] for p in result["paused"]) or "nobody"
    return (f"{len(result['collected'])} renewed for {words.money(result['collected_cents'] / 100)}; "
            f"declined and paused: {paused}")


WINBACK = Workflow(
    name="winback",
    title="win-back campaign",
    describe="email lapsed subscribers an offer, then retry their renewals",
    steps=(
        Step("select_audience", Effect.READ, select_audience, title="Find lapsed subscribers in the CRM",
             summarise=_summarise_audience),
        Step("draft_campaign", Effect.DRAFT, draft_campaign, title="Draft the campaign (content agent)",
             summarise=_summarise_draft),
        Step("send_emails", Effect.EMAIL_CUSTOMERS, send_emails, title="Email the offer",
             summarise=_summarise_emails),
        Step("collect_renewals", Effect.CHARGE, collect_renewals, compensate=refund_renewals,
             title="Retry renewals at the offered price", summarise=_summarise_renewals),
    ),
)
