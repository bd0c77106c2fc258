"""From an action an agent proposed (a screened dict) to the action model its connector takes."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from orchestrator.services import Services

Fields = Callable[[Services, dict[str, Any]], dict[str, Any]]


def _email(services: Services, action: dict[str, Any]) -> dict[str, Any]:
    # The agent names a CRM contact; the address comes from the CRM, never from the proposal.
    contact = services.crm.get(action["to"])
    assert contact is not None, "screened against the resolved customer"
    return {"to": contact.email, "subject": action["subject"], "body": action["body"],
            "sender": services.settings.email_from}


def _access(access: str) -> Fields:
    return lambda _services, action: {"contact_id": action["customer"], "access": access}


FIELDS: dict[str, Fields] = {
    "send_email": _email,
    "charge": lambda _s, a: {"customer": a["customer"], "amount_cents": a["amount_cents"],
                             "description": a["description"]},
    # The amount was checked against the charge by `screen`: a refund is always of the whole charge.
    "refund": lambda _s, a: {"charge_key": a["charge_key"], "reason": a["reason"]},
    "pause_access": _access("paused"),
    "resume_access": _access("active"),
    "provision_account": lambda _s, a: {"contact_id": a["customer"], "email": a["email"], "name": a["name"],
                                        "plan": a["plan"]},
    "pause_collection": lambda _s, a: {"subscription": a["subscription"]},
    "resume_collection": lambda _s, a: {"subscription": a["subscription"]},
    "cancel_subscription": lambda _s, a: {"subscription": a["subscription"]},
    "categorise": lambda _s, a: {"transaction_id": a["transaction_id"], "category": a["category"], "by": "agent"},
}


def connector_action(services: Services, model: type[BaseModel], action: dict[str, Any]) -> BaseModel:
    """The `model` instance that carries `action` (validated, so a malformed one fails before any connector)."""
    return model.model_validate(FIELDS[action["type"]](services, action))
