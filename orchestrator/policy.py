"""Policy: who may act, which effects need an operator's approval."""
from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class Effect(StrEnum):
    """What a step does to the outside world; policy decides per effect, not per workflow."""

    READ = "read"
    DRAFT = "model.draft"
    REASON = "model.reason"
    EMAIL_CUSTOMERS = "email.customers"
    CHARGE = "payments.charge"
    REFUND = "payments.refund"
    ACCESS = "crm.access"


class Policy(BaseModel):
    operators: frozenset[str]
    # Renewal charges are pre-authorised by the subscription itself; refunds and customer email are not.
    approval_required: frozenset[Effect] = Field(
        default=frozenset({Effect.EMAIL_CUSTOMERS, Effect.REFUND, Effect.REASON})
    )

    def is_operator(self, identity: str) -> bool:
        return identity in self.operators

    def needs_approval(self, effect: Effect) -> bool:
        return effect in self.approval_required
