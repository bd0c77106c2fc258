"""The payments connector: charges and refunds, once per key, against a sandbox ledger in PostgreSQL.

The sandbox can be told to decline a customer's next charges (`fail_next_charges`), so the
retry-and-compensate path of a workflow runs for real. The production backend (`connectors.stripe`)
implements the same calls, and `PaymentsReads`, with the provider's own idempotency keys.
"""
from __future__ import annotations

from datetime import datetime
from typing import Protocol

from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from connectors.errors import ActionDeclined, UnknownRecord
from connectors.idempotency import ActionClaims

SUCCEEDED = """
SELECT id, amount_cents, currency FROM payments_ledger WHERE key = %s AND kind = %s AND status = 'succeeded'
"""
CHARGED = """
SELECT customer, amount_cents, currency FROM payments_ledger WHERE key = %s AND kind = 'charge' AND status = 'succeeded'
"""
TAKE_FAULT = """
UPDATE payments_sandbox_faults SET failures_left = failures_left - 1
WHERE customer = %s AND failures_left <> 0
RETURNING reason
"""
RECORD = """
INSERT INTO payments_ledger (key, customer, kind, amount_cents, currency, status, reason)
VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id
"""
# Money that moved in a period, signed as the books keep it: a refund is money going back out.
BETWEEN = """
SELECT id::text AS id, at, CASE WHEN kind = 'refund' THEN -amount_cents ELSE amount_cents END AS amount_cents,
       currency, customer, kind || ' ' || key AS description
FROM payments_ledger WHERE status = 'succeeded' AND at >= %(start)s AND at < %(end)s ORDER BY payments_ledger.id
"""
SET_FAULT = """
INSERT INTO payments_sandbox_faults (customer, reason, failures_left) VALUES (%s, %s, %s)
ON CONFLICT (customer) DO UPDATE SET reason = excluded.reason, failures_left = excluded.failures_left
"""


class Charge(BaseModel):
    customer: str
    amount_cents: int = Field(gt=0)
    currency: str = "usd"
    description: str = ""


class Refund(BaseModel):
    """Refund one earlier charge, named by its key: in full, or `amount_cents` of it where the backend can."""

    charge_key: str
    reason: str = ""
    amount_cents: int | None = Field(default=None, gt=0)


class PaymentReceipt(BaseModel):
    key: str
    # The sandbox ledger's row; None with a provider, whose own id is `reference`.
    ledger_id: int | None
    customer: str
    amount_cents: int
    currency: str
    duplicate: bool
    reference: str = ""


class RefundReceipt(BaseModel):
    key: str
    charge_key: str
    customer: str
    amount_cents: int
    currency: str
    duplicate: bool


class RefundableCharge(BaseModel):
    """A succeeded charge with money left to refund: `key` is what a `Refund` names it by."""

    key: str
    amount_cents: int
    currency: str
    at: datetime


class PaymentLine(BaseModel):
    """Money that moved: a succeeded charge (positive cents) or a refund (negative), named by the backend's own id
    (a ledger row, a Stripe charge or refund), so the books take each once whichever run imports it."""

    id: str
    at: datetime
    amount_cents: int
    currency: str
    customer: str
    description: str = ""


class PaymentsReads(Protocol):
    """What workflows read from any payments backend, sandbox or provider."""

    # What the books call this backend's payments (their `source`): a line's id is unique within it.
    source: str

    def payments_between(self, start: datetime, end: datetime) -> list[PaymentLine]:
        """The charges that succeeded and the refunds made from `start` (included) to `end` (excluded), oldest first."""
        ...

    def refundable(self, customer: str) -> list[RefundableCharge]:
        """The customer's charges that can still be refunded, oldest first, with the amount left on each."""
        ...


class SandboxPayments:
    """A ledger in PostgreSQL: the check for an earlier success, the key's claim, the new entry and the key's
    finish (with their journal events) share one transaction."""

    name = "payments"
    source = "sandbox"

    def __init__(self, pool: ConnectionPool, *, claims: ActionClaims | None = None) -> None:
        self.pool = pool
        self.claims = claims or ActionClaims()

    def execute(self, *, action: Charge | Refund, key: str) -> PaymentReceipt | RefundReceipt:
        """Charge once per key, or refund a charge once. Raises ActionDeclined (with the reason) when the
        sandbox declines a charge, UnknownRecord when a refund names no succeeded charge."""
        if isinstance(action, Refund):
            return self._refund(action, key)
        with self.pool.connection() as conn, conn.transaction():
            # The key's advisory lock makes a concurrent charge with the same key wait for this one
            # and then find its success, instead of both passing the check below.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
            done = conn.execute(SUCCEEDED, (key, "charge")).fetchone()
            if done is not None:
                return PaymentReceipt(
                    key=key, ledger_id=done["id"], customer=action.customer,
                    amount_cents=done["amount_cents"], currency=done["currency"], duplicate=True,
                )
            # The claim checks that this worker still owns its run, and journals the charge with it.
            claim = self.claims.claim(conn, key=key, connector=self.name, action="charge",
                                      request=action.model_dump())
            fault = conn.execute(TAKE_FAULT, (action.customer,)).fetchone()
            status, reason = ("failed", fault["reason"]) if fault else ("succeeded", "")
            row = conn.execute(
                RECORD, (key, action.customer, "charge", action.amount_cents, action.currency, status, reason)
            ).fetchone()
            receipt = PaymentReceipt(
                key=key, ledger_id=row["id"], customer=action.customer,
                amount_cents=action.amount_cents, currency=action.currency, duplicate=False,
            )
            if fault:
                # The decline is kept (the ledger shows it) and the key given back: a retry may charge again.
                declined = ActionDeclined(f"charge to {action.customer} declined: {reason}", reason=reason)
                self.claims.release(conn, claim, error=declined)
            else:
                self.claims.finish(conn, key=key, result=receipt.model_dump(exclude={"duplicate"}))
        if fault:
            raise declined
        return receipt

    def _refund(self, action: Refund, key: str) -> RefundReceipt:
        with self.pool.connection() as conn, conn.transaction():
            # A charge is refunded once whichever key asks: the ledger's refund row carries the charge's
            # key, under the charge key's lock, as `compensate` writes it; `key` only remembers this request.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (action.charge_key,))
            done = self.claims.claim(conn, key=key, connector=self.name, action="refund",
                                     request=action.model_dump()).done
            if done is not None and done.state == "done" and done.result is not None:
                return RefundReceipt.model_validate({**done.result, "duplicate": True})
            charge = conn.execute(CHARGED, (action.charge_key,)).fetchone()
            if charge is None:
                raise UnknownRecord(f"no succeeded charge under {action.charge_key}", record=action.charge_key)
            if action.amount_cents not in (None, charge["amount_cents"]):
                # The ledger holds one refund per charge: a part of it would leave the rest unrefundable.
                raise ActionDeclined(f"the sandbox refunds {action.charge_key} in full only", reason="partial_refund")
            duplicate = conn.execute(SUCCEEDED, (action.charge_key, "refund")).fetchone() is not None
            if not duplicate:
                conn.execute(RECORD, (action.charge_key, charge["customer"], "refund", charge["amount_cents"],
                                      charge["currency"], "succeeded", action.reason))
            receipt = RefundReceipt(key=key, charge_key=action.charge_key, customer=charge["customer"],
                                    amount_cents=charge["amount_cents"], currency=charge["currency"],
                                    duplicate=duplicate)
            self.claims.finish(conn, key=key, result=receipt.model_dump(exclude={"duplicate"}))
        return receipt

    def compensate(self, *, key: str) -> str:
        """Refund the charge made under `key`, once. A refund itself cannot be taken back."""
        with self.pool.connection() as conn, conn.transaction():
            # The charge's lock first, as `execute` takes it, then its record.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
            record = self.claims.for_undo(conn, key)
            if record is not None and record.action == "refund":
                return "a refund cannot be taken back"
            charge = conn.execute(CHARGED, (key,)).fetchone()
            if charge is None:
                return "nothing was charged"
            if conn.execute(SUCCEEDED, (key, "refund")).fetchone() is not None:
                return "already refunded"
            conn.execute(
                RECORD, (key, charge["customer"], "refund", charge["amount_cents"], charge["currency"], "succeeded", "")
            )
            if record is not None:
                self.claims.finish(conn, key=key, result=record.result or {}, state="compensated")
        return f"refunded {charge['amount_cents'] / 100:.2f} {charge['currency'].upper()}"

    def fail_next_charges(self, customer: str, *, reason: str = "card_declined", times: int = -1) -> None:
        """Make the sandbox decline this customer's next `times` charges (-1: every charge)."""
        with self.pool.connection() as conn:
            conn.execute(SET_FAULT, (customer, reason, times))

    def refundable(self, customer: str) -> list[RefundableCharge]:
        entries = self.ledger(customer)
        refunded = {e["key"] for e in entries if e["kind"] == "refund" and e["status"] == "succeeded"}
        return [RefundableCharge(key=e["key"], amount_cents=e["amount_cents"], currency=e["currency"], at=e["at"])
                for e in entries if e["kind"] == "charge" and e["status"] == "succeeded" and e["key"] not in refunded]

    def payments_between(self, start: datetime, end: datetime) -> list[PaymentLine]:
        with self.pool.connection() as conn:
            rows = conn.execute(BETWEEN, {"start": start, "end": end}).fetchall()
        return [PaymentLine.model_validate(row) for row in rows]

    def ledger(self, customer: str | None = None) -> list[dict]:
        with self.pool.connection() as conn:
            return conn.execute(
                "SELECT key, customer, kind, amount_cents, currency, status, reason, at FROM payments_ledger"
                " WHERE %(c)s::text IS NULL OR customer = %(c)s ORDER BY id", {"c": customer}
            ).fetchall()
