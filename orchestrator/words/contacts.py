"""Contacts in chat: how many and the latest, one contact's card, which ones a name matches, the import's summary."""
from __future__ import annotations

from connectors import Contact, ContactCount
from orchestrator.messages import Fact, Message, MessageKind, Section
from orchestrator.words.common import money, plural, utc

IMPORT_HINT = "opsos contacts import people.csv"


def who_is(contact: Contact) -> str:
    """A contact in a line: name, address and id, enough to tell two Anas apart and to name either."""
    name = contact.name or contact.email
    return f"{name} ({contact.email}, {contact.id})"


def matches_line(matches: list[Contact], *, more: bool = False) -> str:
    """The contacts a name matched; `more` when the look-up stopped before the last one."""
    return ", ".join(who_is(c) for c in matches) + (" and more" if more else "")


def no_single_customer(who: str, matches: list[Contact], *, more: bool = False) -> str:
    """Why a request's customer is not resolved: nobody, or several, match what it says."""
    if not matches:
        return f"I found no single customer matching “{who}”."
    return (f"{_how_many(matches, more)} customers match “{who}”: {matches_line(matches, more=more)}. "
            "Reply with the address or id of the one you mean.")


def contacts_overview(count: ContactCount, latest: list[Contact]) -> Message:
    if count.total == 0:
        return Message(kind=MessageKind.NOTICE, title="No contacts yet.",
                       text=f"Bring your customers in from a CSV with “{IMPORT_HINT}”.")
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(count.by_status.items(), key=lambda kv: -kv[1]))
    return Message(
        kind=MessageKind.REPORT,
        title=f"{plural(count.total, 'contact')}: {statuses}.",
        sections=[Section(title="Added last", facts=[
            Fact(label=c.name or c.email, value=f"{c.email} · {_plan(c)} · {c.status} · {c.id}") for c in latest
        ])],
        text="“contact <name, address or id>” shows one.",
    )


def contact_card(contact: Contact) -> Message:
    facts = [
        Fact(label="Email", value=contact.email),
        Fact(label="Plan", value=_plan(contact)),
        Fact(label="Status", value=contact.status + ("" if contact.access == "active" else f", {contact.access}")),
        *([Fact(label="Last paid", value=utc(contact.last_paid_at))] if contact.last_paid_at else []),
        *([Fact(label="Tags", value=", ".join(contact.tags))] if contact.tags else []),
        *([Fact(label="Notes", value=contact.notes)] if contact.notes else []),
        *[Fact(label=str(name), value=str(value)) for name, value in sorted(contact.attributes.items())],
        *([Fact(label="Added", value=utc(contact.created_at))] if contact.created_at else []),
    ]
    return Message(kind=MessageKind.REPORT, title=f"{contact.name or contact.email} · {contact.id}",
                   sections=[Section(facts=facts)])


def contacts_ambiguous(who: str, matches: list[Contact], *, more: bool) -> Message:
    return Message(kind=MessageKind.NOTICE,
                   title=f"{_how_many(matches, more)} contacts match “{who}”: {matches_line(matches, more=more)}.",
                   text="Say “contact <address or id>” for one of them.")


def no_contact(who: str) -> Message:
    return Message(kind=MessageKind.NOTICE, title=f"No contact matches “{who}”.",
                   text=f"“contacts” lists them; “{IMPORT_HINT}” brings yours in.")


def _how_many(matches: list[Contact], more: bool) -> str:
    if more:
        return f"More than {len(matches)}"
    return {2: "Two", 3: "Three", 4: "Four", 5: "Five"}.get(len(matches), str(len(matches)))


def _plan(contact: Contact) -> str:
    amount = f", {money(contact.monthly_cents / 100)}/month" if contact.monthly_cents else ""
    return f"{contact.plan or 'no plan'}{amount}"
