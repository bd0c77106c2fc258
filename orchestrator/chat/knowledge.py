"""Knowledge in chat: remember a fact, recall with sources, and answer "why?" for any action from the index.

Forgetting is a workflow of its own (workflows/forget.py): it needs an approval, like any other
irreversible action.
"""
from __future__ import annotations

import re
from typing import Any

from psycopg import Connection

from memory import Chain, Kind, chain
from orchestrator import audit, words
from orchestrator.inbox import records as inbox
from orchestrator.messages import Message
from orchestrator.services import Services
from orchestrator.workflows import FILES

# "Ana Souza: prefers email over phone" → subject "Ana Souza"; without a colon the subject is the business.
DEFAULT_SUBJECT = "business"

LATEST_ACTION = """
SELECT key, connector, action, request, created_at FROM connector_actions
WHERE (key ILIKE %(like)s OR request::text ILIKE %(like)s)
  AND (%(connectors)s::text[] IS NULL OR connector = ANY(%(connectors)s::text[]))
ORDER BY created_at DESC LIMIT 1
"""
# A verb in the question names the kind of action asked about: "why did we email Ana?" is about her email, not
# the renewal charged to her a minute later.
CONNECTOR_OF_VERB = {"email": "email", "emailed": "email", "mail": "email", "mailed": "email", "sent": "email",
                     "send": "email", "charge": "payments", "charged": "payments", "refund": "payments",
                     "refunded": "payments", "pause": "crm", "paused": "crm", "resume": "crm", "resumed": "crm",
                     "provision": "crm", "provisioned": "crm", "categorise": "books", "categorised": "books"}
# "why did Ana reply?" is about her reply (inbox.latest_reply): the email it answered, and the run that sent that.
REPLY_VERBS = frozenset({"reply", "replied", "replies", "answer", "answered", "respond", "responded", "wrote"})


def split_subject(text: str) -> tuple[str, str]:
    head, sep, rest = text.partition(":")
    if sep and rest.strip() and 0 < len(head.strip()) <= 80:
        return head.strip(), rest.strip()
    return DEFAULT_SUBJECT, text.strip()


def policy_subjects() -> dict[str, str]:
    """The subjects workflow files read as policy memories (a `policy` step's), by their lower-case form."""
    return {step.subject.lower(): step.subject for loaded in FILES.values() for step in loaded.spec.step
            if step.do == "policy" and step.subject}


def remember(services: Services, *, identity: str, channel: str, text: str) -> Message:
    """A fact in long-term memory; under a subject a workflow reads as policy ("ideal customer profile: …") it is
    a policy memory instead, and the newest one replaces the one before (one profile, not a pile of them)."""
    subject, fact = split_subject(text)
    if not fact:
        return words.invalid_request("there is nothing to remember")
    policy = policy_subjects().get(subject.lower())
    with services.stores.pool.connection() as conn, conn.transaction():
        record = services.memory.remember(
            fact, kind=Kind.POLICY if policy else Kind.FACT, subject=policy or subject,
            ref=f"policy:{policy}" if policy else None,
            provenance={"source": f"chat:{channel}", "by": identity}, conn=conn,
        )
        audit.append(conn, actor=identity, kind="memory.remembered", at=services.now(),
                     payload={"memory": record.id, "subject": subject, "outcome": record.outcome})
    return words.remembered(record.id, subject, record.outcome or "inserted")


def recall(services: Services, *, question: str, k: int = 5) -> Message:
    if not question.strip():
        return words.invalid_request("ask a question to recall memories for")
    found = services.memory.recall(question, k=k)
    return words.recalled(question, [(m.id, m.subject, m.text, m.source or "", m.score) for m in found])


def _describe(conn: Connection, found: Chain) -> list[tuple[str, str]]:
    """The chain as (label, text) lines, each read back from the table that holds it."""
    lines: list[tuple[str, str]] = []
    for node in [found.start, *found.lineage, *found.nodes]:
        detail = _detail(conn, node.type, node.id)
        if detail:
            lines.append(detail)
    return lines


def _detail(conn: Connection, type_: str, id_: str) -> tuple[str, str] | None:
    row: dict[str, Any] | None
    if type_ == "action":
        row = conn.execute("SELECT key, connector, action, request, updated_at FROM connector_actions WHERE key = %s",
                           (id_,)).fetchone()
        if row:
            target = row["request"].get("to") or row["request"].get("customer") or row["request"].get("contact_id")
            return "Action", f"{row['connector']}.{row['action']} to {target} at {row['updated_at']:%Y-%m-%d %H:%M}"
    elif type_ == "step":
        return "Step", id_
    elif type_ == "run":
        row = conn.execute("SELECT workflow, state FROM runs WHERE id = %s", (int(id_),)).fetchone()
        if row:
            return "Run", f"#{id_} {row['workflow']} ({row['state']})"
    elif type_ == "intent":
        row = conn.execute("SELECT request, requested_by, channel FROM intents WHERE id = %s", (int(id_),)).fetchone()
        if row:
            return "Intent", f"#{id_} “{row['request']}” from {row['requested_by']} via {row['channel']}"
    elif type_ == "approval":
        row = conn.execute("SELECT state, decided_by, decided_via, decided_at FROM approvals WHERE id = %s",
                           (id_,)).fetchone()
        if row and row["decided_at"]:
            return "Approval", (f"{id_} {row['state']} by {row['decided_by']} via {row['decided_via']} "
                                f"at {row['decided_at']:%Y-%m-%d %H:%M}")
        if row:
            return "Approval", f"{id_} {row['state']}"
    elif type_ == "inbound_email" and id_.isdigit():
        reply = inbox.get(conn, int(id_))
        if reply:
            return "Reply", (f"from {reply.sender_name or reply.sender} <{reply.sender}> at "
                             f"{reply.received_at:%Y-%m-%d %H:%M}: “{reply.subject}” {reply.preview[:120]}")
    elif type_ == "memory":
        row = conn.execute("SELECT subject, text FROM memories WHERE id = %s", (int(id_),)).fetchone()
        if row:
            return "Memory cited", f"#{id_} {row['subject']}: {row['text'][:120]}"
    elif type_ == "audit_event":
        row = conn.execute("SELECT kind, actor, at FROM audit_events WHERE id = %s", (int(id_),)).fetchone()
        if row:
            return "Audit event", f"#{id_} {row['kind']} by {row['actor']} at {row['at']:%Y-%m-%d %H:%M}"
    return None


_FILLER = frozenset({"did", "does", "the", "and", "why", "was", "were", "have", "has", "had", "what", "when",
                     "email", "emailed", "mail", "charge", "charged", "pause", "paused", "refund", "refunded",
                     "send", "sent", "our", "their", "them", "this", "that", "with", "from", "about", "last",
                     *REPLY_VERBS})


def search_terms(about: str) -> list[str]:
    """What in a question can name an action: keys and addresses first, then names, then other words.

    "why did we email Ana on the 3rd?" → ["Ana", "3rd"]: the action is found by the customer it
    touched; the date only narrows nothing and is tried last.
    """
    tokens = re.findall(r"[\w@.:+-]+", about)
    exact = [t for t in tokens if "@" in t or t.count(":") >= 2]
    names = [t for t in tokens if t[:1].isupper() and t.lower() not in _FILLER and len(t) > 1]
    rest = [t for t in tokens if t.lower() not in _FILLER and len(t) > 3 and t not in names]
    seen: list[str] = []
    for term in [about.strip(), *exact, *names, *rest]:
        if term and term not in seen:
            seen.append(term)
    return seen


def why(services: Services, *, about: str) -> Message:
    """The chain behind the latest action matching `about` (a customer, an address, a key, a question)."""
    if not about.strip():
        return words.invalid_request("say which action: a customer, an email address or an action key")
    asked = re.findall(r"\w+", about.lower())
    named = sorted({CONNECTOR_OF_VERB[word] for word in asked if word in CONNECTOR_OF_VERB})
    about_a_reply = any(word in REPLY_VERBS for word in asked)
    with services.stores.pool.connection() as conn:
        for term in search_terms(about):
            reply = inbox.latest_reply(conn, term) if about_a_reply else None
            if reply is not None:
                lines = _describe(conn, chain(conn, "inbound_email", reply.id))
                return words.reply_chain(reply.sender_name or reply.sender, lines)
            action = conn.execute(LATEST_ACTION, {"like": f"%{term}%", "connectors": named or None}).fetchone()
            if action is not None:
                lines = _describe(conn, chain(conn, "action", action["key"]))
                return words.action_chain(action["key"], lines)
    return words.invalid_request(f"I found no action matching “{about.strip()}”")
