"""The catalogue of actions a workflow file's steps are drawn from.

Connector actions are the routes of the action registry (`services.action_registry`): each with the
model its connector takes, its effect in policy's terms and whether the connector's own `compensate`
takes it back. The table is static so that a file is checked without opening a database; a test
keeps it equal to the registry, so a route added there without an entry here fails that test. The
subscription actions are in the table whatever the backend: a file is valid on the sandbox too, and its
step is refused in words when it runs there.
The other actions are the engine's own: an agent step, an approval gate, a wait, a message to the
operator and a memory.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from agents import (
    StructuredAgent,
    bookkeeping_agent,
    campaign_agent,
    fulfillment_agent,
    outreach_agent,
    post_agent,
    qualify_agent,
)
from connectors import (
    AccessChange,
    CancelSubscription,
    Categorisation,
    Charge,
    OutgoingEmail,
    PauseCollection,
    Provision,
    Refund,
    ResumeCollection,
    Tagging,
)
from orchestrator.policy import ACTION_EFFECTS, Effect
from orchestrator.settings import Settings


class Builtin(StrEnum):
    """The catalogue's actions that are not a connector's."""

    AGENT = "agent"
    APPROVAL = "approval"
    WAIT = "wait"
    NOTIFY = "notify"
    REMEMBER = "remember"
    # Over contacts (see `segments`): a segment of the CRM, a policy memory, an agent's scores ranked, a ranked list.
    CONTACTS = "contacts"
    POLICY = "policy"
    RANK = "rank"
    RANKED_LIST = "ranked_list"


@dataclass(frozen=True)
class ConnectorAction:
    model: type[BaseModel]
    reversible: bool
    # Fields the file may leave out, filled from the named setting (an email's sender is the business's address).
    from_settings: Mapping[str, str] = field(default_factory=dict)
    # The payments backend the action needs: subscriptions exist at Stripe only, so the sandbox has no route for it.
    needs_stripe: bool = False

    def defaults(self, settings: Settings) -> dict[str, Any]:
        return {name: getattr(settings, setting) for name, setting in self.from_settings.items()}


CONNECTOR_ACTIONS: dict[str, ConnectorAction] = {
    "send_email": ConnectorAction(OutgoingEmail, reversible=False, from_settings={"sender": "email_from"}),
    "charge": ConnectorAction(Charge, reversible=True),
    "refund": ConnectorAction(Refund, reversible=False),
    "pause_access": ConnectorAction(AccessChange, reversible=True),
    "resume_access": ConnectorAction(AccessChange, reversible=True),
    "provision_account": ConnectorAction(Provision, reversible=True),
    "tag_contact": ConnectorAction(Tagging, reversible=True),
    "categorise": ConnectorAction(Categorisation, reversible=True),
    "pause_collection": ConnectorAction(PauseCollection, reversible=True, needs_stripe=True),
    "resume_collection": ConnectorAction(ResumeCollection, reversible=False, needs_stripe=True),
    "cancel_subscription": ConnectorAction(CancelSubscription, reversible=False, needs_stripe=True),
}

# The specialist agents a file may name, by the name it uses.
AGENTS: dict[str, StructuredAgent[Any]] = {
    "outreach": outreach_agent,
    "fulfillment": fulfillment_agent,
    "bookkeeping": bookkeeping_agent,
    "content": campaign_agent,
    "posts": post_agent,
    # The outreach agent's qualification task: leads scored against the ideal-customer profile.
    "outreach.qualify": qualify_agent,
}

TIERS = ("draft", "reason")


def effect_of(action: str, *, tier: str = "draft") -> Effect:
    """What a catalogue action does, in policy's terms."""
    if action == Builtin.AGENT:
        return Effect.REASON if tier == "reason" else Effect.DRAFT
    if action in CONNECTOR_ACTIONS:
        return ACTION_EFFECTS[action]
    # An approval, a wait, a message to the operator, a memory: nothing outside the business changes.
    return Effect.READ


def side_effecting(action: str) -> bool:
    """Whether the action changes something outside the business (what needs a gate and a compensation)."""
    return action in CONNECTOR_ACTIONS


def known_actions() -> tuple[str, ...]:
    return (*(b.value for b in Builtin), *sorted(CONNECTOR_ACTIONS))
