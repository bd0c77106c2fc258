"""Contacts in chat: `contacts` (how many, the latest) and `contact Ana` (her card, or which ones match)."""
from __future__ import annotations

from orchestrator import words
from orchestrator.messages import Message
from orchestrator.services import Services

LATEST = 5
# Shown of several matches; one more is looked up, to know whether to say "and more".
NAMED_MATCHES = 5


def overview(services: Services) -> Message:
    return words.contacts_overview(services.crm.count(), services.crm.latest(LATEST))


def card(services: Services, who: str) -> Message:
    """One contact's card when `who` names one; when it names several, which (nothing is guessed)."""
    matches = services.crm.find(who, limit=NAMED_MATCHES + 1)
    if not matches:
        return words.no_contact(who)
    if len(matches) == 1:
        return words.contact_card(matches[0])
    return words.contacts_ambiguous(who, matches[:NAMED_MATCHES], more=len(matches) > NAMED_MATCHES)
