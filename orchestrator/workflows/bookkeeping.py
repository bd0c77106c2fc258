"""The bookkeeping workflow: a month's transactions into the books, categorised by the agent, summed by code.

The books are the books connector's sandbox table (`books_transactions`): payments come in from the payments
backend's own read (the sandbox ledger, or Stripe's charges and refunds), bank statement lines are added with
`add_bank_lines` (the demo and tests do). A bank connector would feed the same table; categories are set only
through the books connector, by key.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from agents import BookkeepingParams, bookkeeping_agent
from orchestrator import words
from orchestrator.policy import Effect
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.model import Step, Workflow
from orchestrator.workflows.proposals import Scope, execute, propose, understand

IMPORT_PAYMENT = """
INSERT INTO books_transactions (source, ref, at, amount_cents, currency, counterparty, memo)
VALUES (%(source)s, %(id)s, %(at)s, %(amount_cents)s, %(currency)s, %(customer)s, %(description)s)
ON CONFLICT (source, ref) DO NOTHING
"""
ADD_BANK_LINE = """
INSERT INTO books_transactions (source, ref, at, amount_cents, currency, counterparty, memo)
VALUES ('bank', %(ref)s, %(at)s, %(amount_cents)s, %(currency)s, %(counterparty)s, %(memo)s)
ON CONFLICT (source, ref) DO NOTHING
"""
IN_PERIOD = """
SELECT id, at, amount_cents, currency, counterparty, memo, category FROM books_transactions
WHERE at >= %(start)s AND at < %(end)s ORDER BY at, id
"""
TOTALS = """
SELECT coalesce(category, 'uncategorised') AS category, sum(amount_cents)::bigint AS cents, count(*) AS n
FROM books_transactions WHERE at >= %(start)s AND at < %(end)s GROUP BY 1 ORDER BY 1
"""


class BankLine(BaseModel):
    ref: str
    at: datetime
    amount_cents: int
    counterparty: str
    memo: str = ""
    currency: str = "usd"


def add_bank_lines(pool: ConnectionPool, lines: list[BankLine]) -> None:
    """Put sandbox bank statement lines into the books (once per ref)."""
    with pool.connection() as conn, conn.transaction():
        for line in lines:
            conn.execute(ADD_BANK_LINE, line.model_dump())


def _bounds(ctx: StepContext) -> dict[str, datetime]:
    first = date.fromisoformat(ctx.results["understand"]["params"]["period"] + "-01")
    following = (first + timedelta(days=32)).replace(day=1)
    zone = ctx.services.settings.zone
    return {"start": datetime.combine(first, time(0), tzinfo=zone),
            "end": datetime.combine(following, time(0), tzinfo=zone)}


def import_payments(ctx: StepContext) -> dict[str, Any]:
    """The period's payments as the backend has them, each once: a line's own id is its ref in the books, so a
    re-run (or next week's run over the same month) skips what is there already."""
    bounds = _bounds(ctx)
    payments = ctx.services.payments
    lines = payments.payments_between(bounds["start"], bounds["end"])
    with ctx.services.stores.pool.connection() as conn, conn.transaction():
        imported = sum(conn.execute(IMPORT_PAYMENT, {"source": payments.source, **line.model_dump()}).rowcount
                       for line in lines)
    return {"imported": imported, "source": payments.source}


def gather(ctx: StepContext) -> tuple[dict[str, Any], Scope]:
    with ctx.services.stores.pool.connection() as conn:
        rows = conn.execute(IN_PERIOD, _bounds(ctx)).fetchall()
    transactions = [{**row, "at": row["at"].date().isoformat()} for row in rows]
    return ({"period": ctx.results["understand"]["params"]["period"], "transactions": transactions},
            Scope(transactions=[row["id"] for row in rows]))


def summarise(ctx: StepContext) -> dict[str, Any]:
    with ctx.services.stores.pool.connection() as conn:
        rows = conn.execute(TOTALS, _bounds(ctx)).fetchall()
    by_category = {row["category"]: int(row["cents"]) for row in rows}
    income = sum(v for v in by_category.values() if v > 0)
    expenses = -sum(v for v in by_category.values() if v < 0)
    return {"period": ctx.results["understand"]["params"]["period"], "by_category": by_category,
            "income_cents": income, "expenses_cents": expenses, "net_cents": income - expenses,
            "summary": ctx.results["propose"]["proposal"].get("summary", "")}


def _summarise_imported(result: dict[str, Any]) -> str:
    return words.payments_imported(result["imported"], result.get("source", "sandbox"))


def _signed(cents: int) -> str:
    return ("-" if cents < 0 else "") + words.money(abs(cents) / 100)


def _summarise_totals(result: dict[str, Any]) -> str:
    parts = ", ".join(f"{k} {_signed(v)}" for k, v in sorted(result["by_category"].items()))
    return (f"{result['period']}: income {_signed(result['income_cents'])}, expenses "
            f"{_signed(result['expenses_cents'])}, net {_signed(result['net_cents'])} ({parts})")


BOOKKEEPING_SUMMARY = Workflow(
    name="bookkeeping_summary",
    title="bookkeeping summary",
    describe="categorise a month's transactions and sum them up",
    queue="slow",
    steps=(
        understand("bookkeeping_summary", BookkeepingParams, "bookkeeping summary"),
        Step("import_payments", Effect.BOOKS, import_payments, title="Bring the month's payments into the books",
             summarise=_summarise_imported),
        propose(bookkeeping_agent, gather, title="Categorise (bookkeeping agent)"),
        execute(frozenset({"categorise"}), title="Record the categories", what="Categorise transactions"),
        Step("summarise", Effect.READ, summarise, title="Monthly summary", summarise=_summarise_totals),
    ),
)
