"""The bookkeeping agent: categorises a period's transactions and words its summary; code does the sums."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from agents.base import StructuredAgent, request_prompt
from agents.proposals import Categorise, Proposal


class BookkeepingProposal(Proposal):
    actions: list[Categorise] = Field(default_factory=list)
    summary: str = Field(description="Two or three sentences on the period; the totals are computed separately")


SYSTEM = (
    "You are the bookkeeping agent of a one-person business. Give every uncategorised transaction in the "
    "context exactly one category, by its counterparty and memo, and summarise the period in words. Do "
    "not compute totals. Cite the transaction ids you used as 'txn:<id>'."
)
PROMPT = request_prompt(SYSTEM)

bookkeeping_agent: StructuredAgent[BookkeepingProposal] = StructuredAgent(
    "bookkeeping.categorise", PROMPT, BookkeepingProposal
)

# First match wins; the words are what counterparties and memos of a small online business usually say.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("refunds", ("refund",)),
    ("revenue", ("charge", "renewal", "subscription payment", "invoice paid", "sale")),
    ("hosting", ("aws", "hetzner", "digitalocean", "vercel", "fly.io", "hosting", "server")),
    ("software", ("github", "notion", "figma", "slack", "openai", "anthropic", "software", "saas", "licence")),
    ("marketing", ("ads", "advert", "sponsor", "newsletter promo", "marketing")),
    ("contractors", ("upwork", "contractor", "freelance", "design work")),
    ("fees", ("stripe fee", "bank fee", "fee", "paypal")),
    ("office", ("coworking", "office", "stationery", "desk")),
)


def category_for(text: str, amount_cents: int) -> str:
    lowered = text.lower()
    for category, words in RULES:
        if any(word in lowered for word in words):
            return category
    return "revenue" if amount_cents > 0 else "other"


def offline_bookkeeping(context: dict[str, Any]) -> dict[str, Any]:
    """The offline tier's categoriser: keyword rules on counterparty and memo."""
    transactions = context.get("transactions", [])
    todo = [t for t in transactions if not t.get("category")]
    actions = [
        {"type": "categorise", "transaction_id": int(t["id"]),
         "category": category_for(f"{t.get('counterparty', '')} {t.get('memo', '')}", int(t.get("amount_cents", 0)))}
        for t in todo
    ]
    period = context.get("period", "the period")
    return {
        "actions": actions,
        "summary": f"{len(transactions)} transactions in {period}; {len(actions)} newly categorised by rule.",
        "rationale": "Categories follow the counterparty and memo of each transaction.",
        "cited": [f"txn:{t['id']}" for t in todo],
    }
