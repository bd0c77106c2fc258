"""Policy: who may act, which effects need an operator's approval."""
from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class Risk(StrEnum):
    """How carefully the operator asked opsos to act on an intent ("careful: ask me before anything")."""

    NORMAL = "normal"
    HIGH = "high"


class Effect(StrEnum):
    """What a step does to the outside world; policy decides per effect, not per workflow."""

    READ = "read"
    DRAFT = "model.draft"
    REASON = "model.reason"
    EMAIL_CUSTOMERS = "email.customers"
    CHARGE = "payments.charge"
    REFUND = "payments.refund"
    # A subscription's collection paused or resumed at Stripe: taken back by resuming, so it goes like access.
    COLLECTION = "payments.collection"
    # A subscription cancelled at Stripe: Stripe cannot take a cancellation back.
    CANCEL = "payments.cancel"
    ACCESS = "crm.access"
    # The operator's own labels on their contacts (a lead's score): nothing a customer sees.
    TAGS = "crm.tags"
    BOOKS = "books.write"
    POST = "content.post"
    FORGET = "memory.forget"


# What each proposed action type does; an action type not listed here is never executed.
ACTION_EFFECTS: dict[str, Effect] = {
    "send_email": Effect.EMAIL_CUSTOMERS,
    "charge": Effect.CHARGE,
    "refund": Effect.REFUND,
    # Carried only when payments run on Stripe (see `services.action_registry`); the sandbox has no subscriptions.
    "pause_collection": Effect.COLLECTION,
    "resume_collection": Effect.COLLECTION,
    "cancel_subscription": Effect.CANCEL,
    "pause_access": Effect.ACCESS,
    "resume_access": Effect.ACCESS,
    "provision_account": Effect.ACCESS,
    "tag_contact": Effect.TAGS,
    # Posts are handed to the operator to publish: nothing leaves the business without them.
    "post_content": Effect.POST,
    "categorise": Effect.BOOKS,
}


# What never waits, however careful the intent: reading, and drafting on the mid tier (nothing leaves the business).
UNGATED = frozenset({Effect.READ, Effect.DRAFT})
# What always waits, whatever a policy file says: nothing undoes it.
ALWAYS_ASK = frozenset({Effect.CANCEL})


class Policy(BaseModel):
    operators: frozenset[str]
    # Renewal charges are pre-authorised by the subscription itself; refunds and customer email are not.
    approval_required: frozenset[Effect] = Field(
        default=frozenset({Effect.EMAIL_CUSTOMERS, Effect.REFUND, Effect.REASON, Effect.FORGET})
    )
    # Intent kinds whose reason-tier calls run without an approval (none by default).
    reason_exempt_kinds: frozenset[str] = frozenset()
    # Tiers a step may leave for a cheaper one near a budget cap. `reason` is not among them: a step asking
    # for reasoning gets it or asks the operator for budget, rather than a weaker answer it did not ask for.
    step_down_from: frozenset[str] = frozenset({"draft"})

    def is_operator(self, identity: str) -> bool:
        return identity in self.operators

    def needs_approval(self, effect: Effect, *, risk: Risk = Risk.NORMAL) -> bool:
        """Whether an action with `effect` waits for the operator. A high-risk intent raises the bar: every
        effect on the outside world waits, also the ones policy lets through (renewal charges, access). A cancelled
        subscription always waits: it cannot be undone."""
        if effect in ALWAYS_ASK or (risk is Risk.HIGH and effect not in UNGATED):
            return True
        return effect in self.approval_required

    def reason_needs_approval(self, kind: str, *, risk: Risk = Risk.NORMAL) -> bool:
        """A reason-tier call waits for the operator unless policy exempts the kind; never on a careful intent."""
        if risk is Risk.HIGH:
            return True
        return self.needs_approval(Effect.REASON) and kind not in self.reason_exempt_kinds

    def may_step_down(self, tier: str) -> bool:
        return tier in self.step_down_from
