"""The win-back workflow of a subscription business: find lapsed subscribers, draft, approve, email, collect.

"Lapsed" subscribers are those whose renewal failed; they keep access during a grace period. The
campaign emails them an offer, then retries their renewal at the offered price. A renewal that is
still declined after the retry policy is reported to the operator, and its compensating action
ends the grace period: the subscriber's access is paused.

One approval covers the campaign: it names the emails and the charges that follow them, and binds both. Each
step reads its subscribers' records again before it acts; emails or charges other than the approved ones wait
for a new approval (see `_audience`, `_renewals_approval`).
"""
from __future__ import annotations

from typing import Any

from agents import CampaignDraft, campaign_agent
from connectors import AccessChange, ActionDeclined, Charge, Contact, OutgoingEmail, with_retries
from orchestrator import words
from orchestrator.keys import action_key
from orchestrator.policy import Effect
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.model import Step, Workflow
from orchestrator.workflows.snapshot import Gathered

DISCOUNT_PERCENT = 30
DISCOUNT_MONTHS = 3
RENEWAL = "win-back renewal"


def _contacts(ctx: StepContext) -> list[Contact]:
    return [Contact.model_validate(c) for c in ctx.results["select_audience"]["contacts"]]


def _lapsed(ctx: StepContext) -> list[Contact]:
    """Lapsed subscribers with a price to renew at: a customer synced from Stripe who never subscribed is lapsed
    with no plan, and has no renewal to be won back to (a $0 charge is no charge)."""
    return [contact for contact in ctx.services.crm.segment("lapsed") if contact.monthly_cents > 0]


def _audience(ctx: StepContext) -> list[Contact]:
    """The subscribers the campaign was drafted for, as the CRM has them now: what the approval shows and what
    runs is read at each step, so an address or a price changed since asks again. One no longer lapsed (renewed
    on their own, or gone) is left out; one lapsed since is not added: the operator approved these people."""
    drafted_for = {contact.id for contact in _contacts(ctx)}
    return [contact for contact in _lapsed(ctx) if contact.id in drafted_for]


def select_audience(ctx: StepContext) -> dict[str, Any]:
    contacts = _lapsed(ctx)
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


def _emails(ctx: StepContext, contacts: list[Contact]) -> list[OutgoingEmail]:
    draft = CampaignDraft.model_validate(ctx.results["draft_campaign"])
    sender = ctx.services.settings.email_from
    return [
        OutgoingEmail(
            to=contact.email,
            subject=draft.subject.replace("{first_name}", _first_name(contact)),
            body=draft.body.replace("{first_name}", _first_name(contact)),
            sender=sender,
        )
        for contact in contacts
    ]


def _discounted(contact: Contact) -> int:
    return round(contact.monthly_cents * (100 - DISCOUNT_PERCENT) / 100)


def _charges(contacts: list[Contact]) -> list[Charge]:
    return [Charge(customer=contact.id, amount_cents=_discounted(contact), description=RENEWAL)
            for contact in contacts]


def send_emails(ctx: StepContext) -> dict[str, Any]:
    contacts = _audience(ctx)
    if not contacts:
        return {"sent": [], "count": 0, "repeats_skipped": 0, "approved_charges": None}
    emails, charges = _emails(ctx, contacts), _charges(contacts)
    draft = CampaignDraft.model_validate(ctx.results["draft_campaign"])
    approval = ctx.require_approval(
        effect=Effect.EMAIL_CUSTOMERS,
        # Bound to exactly these rendered emails and the charges that follow them: any change asks again.
        action={"emails": [email.model_dump() for email in emails],
                "charges": [charge.model_dump() for charge in charges]},
        ask=words.campaign_request(
            intent=ctx.intent, offer=draft.offer, rationale=draft.rationale, subject=emails[0].subject,
            preview=emails[0].body, sender=ctx.services.settings.email_from,
            recipients=[(contact.name, email.to) for contact, email in zip(contacts, emails, strict=True)],
            charges=[(contact.name, charge.amount_cents) for contact, charge in zip(contacts, charges, strict=True)],
            attempts=ctx.services.payment_retry.attempts),
    )
    # The emails carry the draft, so they rest on the memories the draft cited.
    ctx.cite(ctx.results["draft_campaign"].get("cited", []))
    sent = []
    for contact, email in zip(contacts, emails, strict=True):
        key = ctx.action_key(contact.id)
        ctx.link_action(key)
        sent.append(ctx.services.email.execute(action=email, key=key))
    return {
        "sent": [s.model_dump() for s in sent],
        "count": len(sent),
        "repeats_skipped": sum(1 for s in sent if s.duplicate),
        # What the operator was told the next step charges; None when policy let the emails go without asking.
        "approved_charges": [c.model_dump() for c in charges] if approval is not None else None,
    }


def _renewals_approval(ctx: StepContext, contacts: list[Contact], charges: list[Charge]) -> None:
    """Return when these charges may run; else AwaitingApproval.

    Renewals are pre-authorised by the subscription, so policy lets them run; but the campaign's approval told the
    operator which charges follow, so others (an amount changed, a subscriber no longer lapsed) wait for them. A
    careful (high-risk) intent asks in any case, bound to exactly these charges.
    """
    approved = ctx.results["send_emails"].get("approved_charges")
    bound = [charge.model_dump() for charge in charges]
    action = {"charges": bound}
    if approved is not None and approved != bound:
        names = {contact.id: contact.name for contact in _contacts(ctx)}
        ask = words.renewals_changed(approved={c["customer"]: c["amount_cents"] for c in approved},
                                     now={c.customer: c.amount_cents for c in charges}, names=names)
        ctx.require_approval(effect=Effect.CHARGE, action=action, ask=ask, required=True)
        return
    ctx.require_approval(effect=Effect.CHARGE, action=action, ask=words.renewals_request(
        [(contact.name, charge.amount_cents) for contact, charge in zip(contacts, charges, strict=True)]))


def collect_renewals(ctx: StepContext) -> dict[str, Any]:
    contacts = _audience(ctx)
    if not contacts:
        return {"collected": [], "paused": [], "collected_cents": 0}
    charges = _charges(contacts)
    _renewals_approval(ctx, contacts, charges)
    collected: list[dict[str, Any]] = []
    paused: list[dict[str, Any]] = []
    for contact, charge in zip(contacts, charges, strict=True):
        amount = charge.amount_cents
        key = ctx.action_key(contact.id)
        ctx.link_action(key)

        def attempt(number: int, charge: Charge = charge, key: str = key):
            return ctx.services.payments.execute(action=charge, key=key)

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
