"""Payments through Stripe: charges on a saved card, refunds, a subscription's collection paused, resumed or
cancelled, each once per opsos key; and the reads workflows need (customers, subscriptions, invoices).

Each write is claimed in `connector_actions` (and journalled) before Stripe is called and finished after, as the
email connector does; and each sends an Idempotency-Key derived from the opsos key, so the charge is made once
even when opsos lost its own record of it: a re-run sends the same key and body, and Stripe answers with the
first outcome (`Idempotent-Replayed: true`) instead of charging again.

Stripe stores a decline under its key too, so a retry of a declined charge under the same key would only hear
the old decline again. A decline proves nothing was charged, so the charge's Nth try after N declines uses the
key's Nth form; a re-run walks the forms from the first, skipping replayed declines, to the first one Stripe
has not answered yet or the one it charged under. A charge thus stays once per opsos key however often
it is declined, retried or re-run.

Long because: every write, its compensation and the reads share one client, one retry policy and one breaker.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import psycopg
import stripe
import structlog
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from connectors.errors import ActionDeclined, ActionInProgress, ActionRejected, ConnectorUnavailable, UnknownRecord
from connectors.fencing import check_fence
from connectors.idempotency import ActionClaims, Claim, lookup
from connectors.payments import Charge, PaymentLine, PaymentReceipt, Refund, RefundableCharge, RefundReceipt
from connectors.resilience import CircuitBreaker, RetryPolicy, with_retries
from connectors.stripe.errors import replayed, translate
from connectors.stripe.records import (
    CancelSubscription,
    Page,
    PauseCollection,
    ResumeCollection,
    StripeCustomer,
    StripeInvoice,
    StripeSubscription,
    SubscriptionChanged,
    charge_line,
    refund_line,
)
from connectors.stripe.undo import NOTHING_CHARGED, PENDING_CLAIM, TAKE_OVER, final_word, undo_key

log = structlog.get_logger(__name__)

R = TypeVar("R", bound=BaseModel)
Purpose = Literal["do", "undo"]

# Declines one charge key may collect before opsos stops walking its forms (a dunning run makes a handful).
MAX_DECLINES = 50
# A PaymentIntent in these states took (or is taking) the money; any other after confirm asks for the customer.
CHARGED = frozenset({"succeeded", "processing"})
# A charge or a charge list may name an opsos contact (`c-…`, what workflows hold) or a Stripe customer itself.
LINKED_CUSTOMER = "SELECT stripe_customer_id FROM crm_contacts WHERE id = %s"
StripeAction = Charge | Refund | PauseCollection | ResumeCollection | CancelSubscription
StripeResult = PaymentReceipt | RefundReceipt | SubscriptionChanged


def stripe_key(key: str, *, purpose: Purpose = "do", attempt: int = 0) -> str:
    """The Idempotency-Key Stripe gets for `key`'s action (`do`) or its compensation (`undo`), try `attempt`.

    The first try of an action sends the opsos key itself, so Stripe's request log shows it; longer keys than
    Stripe's 255 characters, and every derived form, are a hash under a prefix no opsos key starts with.
    """
    if purpose == "do" and attempt == 0 and len(key) <= 255 and not key.startswith("opsos/"):
        return key
    return "opsos/" + hashlib.sha256(f"{purpose}\n{attempt}\n{key}".encode()).hexdigest()


def stripe_client(api_key: str, *, api_base: str | None = None, timeout: float = 30.0) -> stripe.StripeClient:
    """Stripe's own client, at `api_base` when given (a stand-in, a proxy). Its built-in retries are off:
    the connector's retry policy and circuit breaker are the ones that decide, with the same key each time."""
    return stripe.StripeClient(api_key, base_addresses={"api": api_base} if api_base else None,
                               max_network_retries=0, http_client=stripe.RequestsClient(timeout=timeout))


def _dict(obj: stripe.StripeObject) -> dict[str, Any]:
    return obj.to_dict()


class StripePayments:
    """The payments connector on the operator's Stripe account; same protocol as `SandboxPayments`."""

    name = "payments"
    source = "stripe"

    def __init__(
        self,
        pool: ConnectionPool,
        client: stripe.StripeClient,
        *,
        claims: ActionClaims | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.pool = pool
        self.client = client
        self.claims = claims or ActionClaims()
        # Declines go back to the workflow's own payment retry (dunning); only unavailability is retried here.
        self.retry = retry or RetryPolicy(attempts=3, base_seconds=0.5, retry_declines=False)
        self.breaker = breaker or CircuitBreaker("stripe")
        self.sleep = sleep

    # -- actions ------------------------------------------------------------------------------------------

    def execute(self, *, action: StripeAction, key: str) -> StripeResult:
        """Do `action` once per `key`. Raises ActionDeclined (Stripe's decline code as reason) when a card is
        declined, ConnectorUnavailable when Stripe stays unreachable or rate-limited after the retries,
        ActionRejected (Stripe's message) when Stripe refuses the request, UnknownRecord for a missing record."""
        request = action.model_dump()
        if isinstance(action, Charge):
            return self._once(key, "charge", request, PaymentReceipt, lambda: self._charge(action, key))
        if isinstance(action, Refund):
            return self._once(key, "refund", request, RefundReceipt, lambda: self._refund(action, key))
        if isinstance(action, PauseCollection):
            params: dict[str, Any] = {"pause_collection": {"behavior": action.behavior}}
            return self._once(key, "pause_collection", request, SubscriptionChanged,
                              lambda: self._update(action.subscription, params, key, "pausing collection of"))
        if isinstance(action, ResumeCollection):
            # An empty string is how Stripe's form encoding unsets a field.
            return self._once(key, "resume_collection", request, SubscriptionChanged,
                              lambda: self._update(action.subscription, {"pause_collection": ""}, key,
                                                   "resuming collection of"))
        return self._once(key, "cancel_subscription", request, SubscriptionChanged,
                          lambda: self._cancel(action.subscription, key))

    def compensate(self, *, key: str) -> str:
        """Undo what was done under `key`, once: a charge is refunded (what is left of it), a paused collection
        resumed. A refund or a cancellation cannot be taken back. A charge whose worker died before recording
        Stripe's answer is looked up in Stripe by its key and refunded if it took money. Raises ActionInProgress
        while another attempt holds the charge or its undoing, else as `execute` does."""
        # The concurrency rule: the charge's record is locked (FOR UPDATE) while the undo key is claimed, and that
        # claim commits before Stripe is called, so of two compensators one holds the undoing across the call and
        # finishes it; the other waits for the row, then meets the held claim (ActionInProgress) or, once the first
        # finished, the compensated record.
        with self.pool.connection() as conn, conn.transaction():
            record = self.claims.for_undo(conn, key)
            if record is None:
                # A claim commits before Stripe is called, and one whose worker died is never pruned: no record is
                # no request.
                return NOTHING_CHARGED
            said = final_word(record)
            if said is not None:
                return said
            unknown = record.state != "done" or record.result is None
            if unknown and record.action != "charge":
                return f"the outcome under {key} is not known yet; run the step again to settle it"
            if unknown:
                pending = conn.execute(PENDING_CLAIM, (key,)).fetchone()
                if pending["live"]:
                    raise ActionInProgress(f"{key} is being charged", key=key, retry_after=pending["remaining"])
            claim = self.claims.claim(conn, key=undo_key(key), connector=self.name, action=f"undo_{record.action}",
                                      request={"undoes": key})
            if unknown and claim.done is None:  # a late answer of the lost attempt must not record a charge now
                conn.execute(TAKE_OVER, (claim.owner, key))
        if claim.done is not None:
            # Undone before, with nothing to mark compensated: the charge it looked for was never made.
            return (claim.done.result or {}).get("said", NOTHING_CHARGED)
        try:
            if unknown:
                result, said = self._undo_lost_charge(key, pending["request"])
            elif record.action == "charge":
                result, said = record.result, self._refund_rest(record.result["reference"], key)
            else:
                changed = self._update(record.result["subscription"], {"pause_collection": ""}, key,
                                       "resuming collection of", purpose="undo")
                result, said = record.result, f"resumed collection of {changed.subscription}"
        except Exception as error:
            self._give_back(claim, error)
            raise
        with self.pool.connection() as conn, conn.transaction():
            self.claims.finish(conn, key=undo_key(key), result={"undoes": key, "said": said})
            if result is not None:
                self.claims.finish(conn, key=key, result=result, state="compensated")
        return said

    def _undo_lost_charge(self, key: str, request: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """Refund the charge made under `key` whose answer opsos never recorded, found in Stripe by the key in its
        metadata; the receipt it would have recorded and the words, or (None, "nothing was charged")."""
        charge = Charge.model_validate(request)
        customer = self._stripe_customer(charge.customer)
        # Listed rather than searched: Stripe's search lags behind its writes by up to a minute, a list does not.
        intents = [intent for intent in self._intents(customer, charge.customer)
                   if (intent.get("metadata") or {}).get("opsos_key") == key]
        taken = next((i for i in intents if i["status"] == "succeeded"), None)
        if taken is None:
            if any(i["status"] == "processing" for i in intents):
                raise ConnectorUnavailable(f"Stripe is still processing the charge under {key}; it is undone once "
                                           f"Stripe settles it")
            return None, NOTHING_CHARGED
        receipt = PaymentReceipt(key=key, ledger_id=None, reference=taken["id"], customer=charge.customer,
                                 amount_cents=taken["amount"], currency=taken["currency"], duplicate=False)
        return receipt.model_dump(mode="json", exclude={"duplicate"}), self._refund_rest(taken["id"], key)

    def _once(self, key: str, action: str, request: dict[str, Any], model: type[R], act: Callable[[], R]) -> R:
        # The claim commits before Stripe is called: while it lasts no other worker acts under the key.
        with self.pool.connection() as conn, conn.transaction():
            claim = self.claims.claim(conn, key=key, connector=self.name, action=action, request=request)
        if claim.done is not None and claim.done.result is not None:
            return model.model_validate({**claim.done.result, "duplicate": True})
        try:
            result = act()
        except Exception as error:
            self._give_back(claim, error)
            raise
        with self.pool.connection() as conn, conn.transaction():
            self.claims.finish(conn, key=key, result=result.model_dump(mode="json", exclude={"duplicate"}))
        log.info("stripe.done", key=key, action=action, duplicate=getattr(result, "duplicate", False))
        return result

    def _give_back(self, claim: Claim, error: Exception) -> None:
        """Free the key at once: the next attempt sends the same Idempotency-Key, so Stripe settles whether this
        one (a lost answer, a timeout) took effect."""
        try:
            with self.pool.connection() as conn, conn.transaction():
                self.claims.release(conn, claim, error=error)
        except psycopg.Error as lost:
            log.warning("stripe.claim_not_released", key=claim.record.key, error=str(lost))

    def _call(self, fn: Callable[[], R], doing: str, *, record: str = "") -> R:
        """`fn` with Stripe's errors translated, retried while Stripe is unavailable, behind the breaker."""
        def once() -> R:
            check_fence()  # each attempt: one that outlived its run's lock must not charge behind the new holder
            try:
                return fn()
            except stripe.StripeError as error:
                raise translate(error, doing, record=record) from error

        return with_retries(lambda _attempt: self.breaker.call(once), self.retry, sleep=self.sleep)

    def _stripe_customer(self, customer: str) -> str:
        """The Stripe customer id for `customer`: a contact's linked one, else `customer` itself (a `cus_…` id).
        Raises UnknownRecord for a contact that no sync has linked to a Stripe customer."""
        with self.pool.connection() as conn:
            row = conn.execute(LINKED_CUSTOMER, (customer,)).fetchone()
        if row is None:
            return customer
        if row["stripe_customer_id"] is None:
            raise UnknownRecord(f"the contact {customer} is not linked to a Stripe customer; `opsos contacts sync "
                                f"stripe` links contacts to Stripe's customers by email", record=customer)
        return str(row["stripe_customer_id"])

    def _charge(self, action: Charge, key: str) -> PaymentReceipt:
        customer = self._stripe_customer(action.customer)
        doing = f"the charge to {customer}"
        method = self._saved_method(customer)
        params: dict[str, Any] = {
            "customer": customer, "amount": action.amount_cents, "currency": action.currency,
            "payment_method": method, "confirm": True, "off_session": True, "metadata": {"opsos_key": key},
        }
        if action.description:
            params["description"] = action.description

        def confirm() -> tuple[dict[str, Any], bool]:
            for attempt in range(MAX_DECLINES):
                try:
                    intent = self.client.v1.payment_intents.create(
                        params, {"idempotency_key": stripe_key(key, attempt=attempt)})  # type: ignore[arg-type]
                except stripe.CardError as error:
                    if replayed(error.headers) and attempt + 1 < MAX_DECLINES:
                        continue  # an earlier try's decline: nothing was charged under it, the next form is free
                    raise
                response = intent.last_response
                return _dict(intent), replayed(response.headers if response is not None else None)
            raise AssertionError("unreachable: the last form returns or raises")

        intent, duplicate = self._call(confirm, doing, record=action.customer)
        if intent["status"] not in CHARGED:
            # Off-session, a card that wants its holder (3-D Secure) is a decline: nobody is there to confirm.
            raise ActionDeclined(f"Stripe could not charge {action.customer} without them: {intent['status']}",
                                 reason=intent["status"])
        return PaymentReceipt(key=key, ledger_id=None, reference=intent["id"], customer=action.customer,
                              amount_cents=intent["amount"], currency=intent["currency"], duplicate=duplicate)

    def _saved_method(self, customer: str) -> str:
        """The customer's default payment method, else their first saved one; a customer with none is a decline."""
        found = self._call(lambda: _dict(self.client.v1.customers.retrieve(customer)), f"looking up {customer}",
                           record=customer)
        method = StripeCustomer.parse(found).default_payment_method
        if method is None:
            saved = self._call(lambda: self.client.v1.customers.payment_methods.list(customer, {"limit": 1}),
                               f"the saved cards of {customer}", record=customer)
            method = saved.data[0].id if saved.data else None
        if method is None:
            raise ActionDeclined(f"{customer} has no saved payment method in Stripe", reason="no_payment_method")
        return method

    def _intent_of(self, charge_key: str) -> dict[str, Any]:
        """The PaymentIntent a refund names: by the opsos key of a charge made here, or by its Stripe id."""
        with self.pool.connection() as conn:
            record = lookup(conn, charge_key)
        if record is not None and record.action == "charge" and record.result is not None:
            reference = record.result["reference"]
        elif charge_key.startswith("pi_"):
            reference = charge_key
        else:
            raise UnknownRecord(f"no charge under {charge_key}", record=charge_key)
        return self._call(lambda: _dict(self.client.v1.payment_intents.retrieve(reference)),
                          f"looking up the charge {reference}", record=charge_key)

    def _refund(self, action: Refund, key: str) -> RefundReceipt:
        intent = self._intent_of(action.charge_key)
        params: dict[str, Any] = {"payment_intent": intent["id"],
                                  "metadata": {"opsos_key": key, "opsos_reason": action.reason}}
        if action.amount_cents is not None:
            params["amount"] = action.amount_cents
        receipt = RefundReceipt(key=key, charge_key=action.charge_key, customer=intent["customer"],
                                amount_cents=action.amount_cents or intent["amount"], currency=intent["currency"],
                                duplicate=False)
        try:
            refund = self._call(lambda: self.client.v1.refunds.create(params, {"idempotency_key": stripe_key(key)}),
                                f"the refund of {intent['id']}", record=action.charge_key)
        except ActionRejected as refused:
            # Refunded in full already (by another key, or in Stripe's dashboard): once whichever key asks.
            if refused.code == "charge_already_refunded":
                return receipt.model_copy(update={"duplicate": True})
            raise
        response = refund.last_response
        return receipt.model_copy(update={"amount_cents": refund.amount,
                                          "duplicate": replayed(response.headers if response else None)})

    def _refund_rest(self, reference: str, key: str) -> str:
        params = {"payment_intent": reference, "metadata": {"opsos_key": key, "opsos_reason": "compensation"}}
        try:
            refund = self._call(
                lambda: self.client.v1.refunds.create(params, {"idempotency_key": stripe_key(key, purpose="undo")}),
                f"the refund of {reference}", record=key)
        except ActionRejected as refused:
            if refused.code == "charge_already_refunded":
                return "already refunded"
            raise
        return f"refunded {refund.amount / 100:.2f} {refund.currency.upper()}"

    def _update(self, subscription: str, params: dict[str, Any], key: str, doing: str,
                purpose: Purpose = "do") -> SubscriptionChanged:
        def update() -> tuple[dict[str, Any], bool]:
            changed = self.client.v1.subscriptions.update(
                subscription, params, {"idempotency_key": stripe_key(key, purpose=purpose)})  # type: ignore[arg-type]
            response = changed.last_response
            return _dict(changed), replayed(response.headers if response else None)

        raw, duplicate = self._call(update, f"{doing} {subscription}", record=subscription)
        return self._changed(key, raw, duplicate)

    def _cancel(self, subscription: str, key: str) -> SubscriptionChanged:
        def cancel() -> tuple[dict[str, Any], bool]:
            cancelled = self.client.v1.subscriptions.cancel(subscription, None, {"idempotency_key": stripe_key(key)})
            response = cancelled.last_response
            return _dict(cancelled), replayed(response.headers if response else None)

        raw, duplicate = self._call(cancel, f"cancelling {subscription}", record=subscription)
        return self._changed(key, raw, duplicate)

    @staticmethod
    def _changed(key: str, raw: dict[str, Any], duplicate: bool) -> SubscriptionChanged:
        parsed = StripeSubscription.parse(raw)
        return SubscriptionChanged(key=key, subscription=parsed.id, customer=parsed.customer, status=parsed.status,
                                   collection_paused=parsed.collection_paused, duplicate=duplicate)

    # -- reads ----------------------------------------------------------------------------------------------

    def check(self) -> None:
        """One read with the key (a customer list of one, which the connector needs rights for anyway). Raises
        CredentialsRejected when Stripe refuses the key, ConnectorUnavailable when Stripe cannot be reached."""
        self._call(lambda: self.client.v1.customers.list({"limit": 1}), "checking the API key")

    def customers(self, *, after: str | None = None, limit: int = 100) -> Page[StripeCustomer]:
        """One page of customers, newest first as Stripe lists them; `Page.after` resumes after it."""
        return self._page(self.client.v1.customers.list, {}, after, limit, StripeCustomer.parse, "listing customers")

    def subscriptions(self, *, customer: str | None = None, status: str = "all", after: str | None = None,
                      limit: int = 100) -> Page[StripeSubscription]:
        params = {"status": status, **({"customer": customer} if customer else {})}
        return self._page(self.client.v1.subscriptions.list, params, after, limit, StripeSubscription.parse,
                          "listing subscriptions")

    def invoices(self, *, status: str = "open", customer: str | None = None, after: str | None = None,
                 limit: int = 100) -> Page[StripeInvoice]:
        params = {"status": status, **({"customer": customer} if customer else {})}
        return self._page(self.client.v1.invoices.list, params, after, limit, StripeInvoice.parse,
                          "listing invoices")

    def failed_invoices(self, *, customer: str | None = None) -> list[StripeInvoice]:
        """Open invoices Stripe has tried to collect and could not (Stripe has no "failed" status of its own)."""
        failed: list[StripeInvoice] = []
        after: str | None = None
        while True:
            page = self.invoices(status="open", customer=customer, after=after)
            failed.extend(invoice for invoice in page.items if invoice.failed)
            if not page.has_more:
                return failed
            after = page.after

    def refundable(self, customer: str) -> list[RefundableCharge]:
        """The customer's succeeded PaymentIntents with money left to refund, oldest first, named by their
        Stripe id (a `Refund` takes it as `charge_key`), whether opsos made them or not."""
        found: list[RefundableCharge] = []
        for intent in self._intents(self._stripe_customer(customer), customer, expand=["data.latest_charge"]):
            # Expanded, the latest charge says how much of it was refunded already.
            charge = intent.get("latest_charge")
            refunded = charge.get("amount_refunded", 0) if isinstance(charge, dict) else 0
            left = intent.get("amount_received", 0) - refunded
            if intent["status"] == "succeeded" and left > 0:
                found.append(RefundableCharge(key=intent["id"], amount_cents=left, currency=intent["currency"],
                                              at=datetime.fromtimestamp(intent["created"], UTC)))
        return sorted(found, key=lambda c: c.at)

    def payments_between(self, start: datetime, end: datetime) -> list[PaymentLine]:
        """The charges that succeeded and the refunds made in [start, end) on the account, whoever made them (opsos,
        Stripe's own subscription billing, the dashboard), each by its Stripe id, oldest first. Listed by `created`,
        page by page: one charge refunded later is the charge in its month and the refund in the refund's."""
        period = {"created": {"gte": int(start.timestamp()), "lt": int(end.timestamp())}}
        charges = self._every(self.client.v1.charges.list, period, "listing the period's charges")
        refunds = self._every(self.client.v1.refunds.list, {**period, "expand": ["data.charge"]},
                              "listing the period's refunds")
        lines = [*filter(None, map(charge_line, charges)), *filter(None, map(refund_line, refunds))]
        return sorted(lines, key=lambda line: (line.at, line.id))

    def _every(self, list_call: Callable[..., Any], params: dict[str, Any], doing: str, *,
               record: str = "") -> Iterator[dict[str, Any]]:
        """Every object of a list call, page by page (`starting_after` the last one seen)."""
        after: str | None = None
        while True:
            query = {**params, "limit": 100, **({"starting_after": after} if after else {})}
            page = self._call(lambda q=query: list_call(q), doing, record=record)  # type: ignore[misc]
            yield from map(_dict, page.data)
            if not page.has_more or not page.data:
                return
            after = page.data[-1].id

    def _intents(self, linked: str, customer: str, *, expand: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Every PaymentIntent of the Stripe customer `linked` (opsos's `customer`), newest first, page by page."""
        return self._every(self.client.v1.payment_intents.list,
                           {"customer": linked, **({"expand": expand} if expand else {})},
                           f"the charges of {customer}", record=customer)

    def _page(self, list_call: Callable[..., Any], params: dict[str, Any], after: str | None, limit: int,
              parse: Callable[[dict[str, Any]], R], doing: str) -> Page[R]:
        query = {**params, "limit": limit, **({"starting_after": after} if after else {})}
        listed = self._call(lambda: list_call(query), doing)
        items = [parse(_dict(obj)) for obj in listed.data]
        return Page[R](items=items, has_more=bool(listed.has_more), after=listed.data[-1].id if listed.data else after)
