"""A local Stripe REST API: the endpoints opsos's payments connector uses, on Stripe's wire format.

Form-encoded bodies with Stripe's nested `a[b]=c` / `a[0]=c` keys; JSON objects with `id` and `object`; Stripe's
error envelope; and Idempotency-Key semantics: a write repeated with the same key and the same parameters gets
the first answer again (with `Idempotent-Replayed: true`), declines included, since Stripe stores every request
it started executing; the same key with other parameters gets a 400 `idempotency_error`. Scripted 429s and 500s
are answered before anything executes, so they are not stored and a retry under the key runs for real.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import deque
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.standins._server import Call, StandIn, answer

API_KEY = "sk_test_opsos_standin"
# Stripe's objects carry Unix times; the stand-in's clock only moves forward, one second per object made.
EPOCH = 1_767_225_600

_INDEX = re.compile(r"\[([^\]]*)\]")


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding back to nested values: `a[b]=c` a dict, `a[0]=c` a list, `a=` an empty string."""
    nested: dict[str, Any] = {}
    for name, value in pairs:
        head, _, rest = name.partition("[")
        path = [head, *_INDEX.findall("[" + rest)] if rest else [head]
        node: Any = nested
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return _listify(nested)


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if value and all(key.isdigit() for key in value):
        return [_listify(value[key]) for key in sorted(value, key=int)]
    return {key: _listify(item) for key, item in value.items()}


class StripeError(Exception):
    def __init__(self, status: int, kind: str, message: str, *, code: str | None = None,
                 decline_code: str | None = None, param: str | None = None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": kind, "message": message,
                               **{k: v for k, v in (("code", code), ("decline_code", decline_code),
                                                    ("param", param)) if v is not None}, **(extra or {})}}


def _missing(what: str, oid: str) -> StripeError:
    return StripeError(404, "invalid_request_error", f"No such {what}: '{oid}'", code="resource_missing", param="id")


class StripeStandIn(StandIn):
    """Stripe at `url`: point `StripeClient(API_KEY, base_addresses={"api": url})` at it.

    Scripted failures are named by operation (`payment_intents.create`, `refunds.create`, `subscriptions.update`,
    `customers.list`, …): `fail_next(op, kind="ratelimited")` for a 429, `fail_next(op)` for a 500;
    `slow_next(op, seconds=…)` for the real answer, late (a request in flight that a concurrent one can overtake).
    """

    def __init__(self, *, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.customers: dict[str, dict[str, Any]] = {}
        self.payment_methods: dict[str, list[dict[str, Any]]] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self._declines: dict[str, deque[tuple[str, str, str]]] = {}
        # Idempotency-Key → (operation, parameters, status, payload): what the key was first used for and answered.
        self._keys: dict[str, tuple[str, dict[str, Any], int, dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._clock = itertools.count(EPOCH)

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/v1/{path:.*}", self._api)

    # -- helpers for tests ------------------------------------------------------------------------

    def add_customer(self, cid: str, *, email: str, name: str, card: bool = True) -> dict[str, Any]:
        """A customer, with a saved card as their default payment method unless `card` is False."""
        method = f"pm_{cid}"
        self.customers[cid] = {"id": cid, "object": "customer", "email": email, "name": name,
                               "created": next(self._clock), "delinquent": False, "metadata": {}, "livemode": False,
                               "invoice_settings": {"default_payment_method": method if card else None}}
        self.payment_methods[cid] = [{"id": method, "object": "payment_method", "type": "card", "customer": cid,
                                      "card": {"brand": "visa", "last4": "4242"}}] if card else []
        return self.customers[cid]

    def add_subscription(self, sid: str, *, customer: str, amount_cents: int, status: str = "active",
                         interval: str = "month") -> dict[str, Any]:
        price = {"id": f"price_{amount_cents}_{interval}", "object": "price", "unit_amount": amount_cents,
                 "currency": "usd", "recurring": {"interval": interval}}
        self.subscriptions[sid] = {"id": sid, "object": "subscription", "customer": customer, "status": status,
                                   "pause_collection": None, "cancel_at_period_end": False, "canceled_at": None,
                                   "created": next(self._clock), "livemode": False, "metadata": {},
                                   "items": {"object": "list", "data": [{"id": f"si_{sid}", "object":
                                             "subscription_item", "price": price}], "has_more": False}}
        return self.subscriptions[sid]

    def add_invoice(self, iid: str, *, customer: str, subscription: str | None, amount_cents: int,
                    status: str = "open", attempt_count: int = 0) -> dict[str, Any]:
        self.invoices[iid] = {"id": iid, "object": "invoice", "customer": customer, "status": status,
                              "amount_due": amount_cents, "amount_remaining": amount_cents if status == "open" else 0,
                              "currency": "usd", "attempt_count": attempt_count, "attempted": attempt_count > 0,
                              "next_payment_attempt": None, "created": next(self._clock), "livemode": False,
                              "parent": {"type": "subscription_details",
                                         "subscription_details": {"subscription": subscription}}}
        return self.invoices[iid]

    def decline_next(self, customer: str, *, times: int = 1, code: str = "card_declined",
                     decline_code: str = "insufficient_funds",
                     message: str = "Your card has insufficient funds.") -> None:
        """Decline the customer's next `times` charges with Stripe's card_error."""
        self._declines.setdefault(customer, deque()).extend([(code, decline_code, message)] * times)

    def advance(self, seconds: int) -> None:
        """Move the clock on: objects made from now on carry times `seconds` later (a charge next month)."""
        self._clock = itertools.count(next(self._clock) + seconds)

    def succeeded_charges(self, customer: str | None = None) -> list[dict[str, Any]]:
        """PaymentIntents that took money, oldest first: what the customer's card statement would show."""
        return [pi for pi in self.payment_intents.values()
                if pi["status"] == "succeeded" and customer in (None, pi["customer"])]

    # -- the wire -----------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        raw = await request.text() if request.can_read_body else ""
        params = decode_form(parse_qsl(request.query_string, keep_blank_values=True)
                             + parse_qsl(raw, keep_blank_values=True))
        operation, handler, args = self._route(request.method, request.path)
        call = self.record(request, operation, params=params)
        headers = {"Request-Id": f"req_{next(self._ids):06d}"}
        if call.headers.get("authorization") != f"Bearer {self.api_key}":
            shown = call.headers.get("authorization", "").removeprefix("Bearer ")
            return answer(call, 401, headers, {"error": {
                "type": "invalid_request_error", "message": f"Invalid API Key provided: {shown[:8]}****"}})
        failure = self.failures.take(operation)
        if failure is not None and failure.kind == "slow":
            await asyncio.sleep(failure.delay)
            failure = None
        if failure is not None and failure.kind == "ratelimited":
            return answer(call, 429, headers, StripeError(429, "invalid_request_error", "Too many requests hit the "
                                                          "API too quickly.", code="rate_limit").body)
        if failure is not None:
            return answer(call, 500, headers, StripeError(500, "api_error", "Something went wrong on Stripe's end.")
                          .body)
        key = call.headers.get("idempotency-key")
        if key is not None and request.method in ("POST", "DELETE"):
            first = self._keys.get(key)
            if first is not None:
                if (first[0], first[1]) != (operation, params):
                    return answer(call, 400, headers, StripeError(
                        400, "idempotency_error", "Keys for idempotent requests can only be used with the same "
                        f"parameters they were first used with. Try using a key other than '{key}' if you meant "
                        "to execute a different request.").body)
                return answer(call, first[2], {**headers, "Idempotent-Replayed": "true"}, first[3])
        status, payload = self._run(handler, args, params)
        if key is not None and request.method in ("POST", "DELETE"):
            self._keys[key] = (operation, params, status, payload)
        return answer(call, status, {**headers, "Idempotency-Key": key} if key else headers, payload)

    def _route(self, method: str, path: str) -> tuple[str, Any, tuple[str, ...]]:
        parts = tuple(path.removeprefix("/v1/").split("/"))
        table: dict[tuple[str, int], tuple[str, Any]] = {
            ("GET", 1): ("list", self._list), ("GET", 2): ("retrieve", self._retrieve),
            ("POST", 1): ("create", self._create), ("POST", 2): ("update", self._update),
            ("DELETE", 2): ("cancel", self._cancel), ("GET", 3): ("list", self._sub_list),
        }
        verb, handler = table.get((method, len(parts)), ("unknown", None))
        return f"{parts[0]}.{verb}", handler, parts

    def _run(self, handler: Any, args: tuple[str, ...], params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            if handler is None:
                raise StripeError(404, "invalid_request_error", f"Unrecognized request URL: /v1/{'/'.join(args)}")
            return 200, handler(args, params)
        except StripeError as error:
            return error.status, error.body

    # -- resources ----------------------------------------------------------------------------------

    def _store(self, resource: str) -> dict[str, dict[str, Any]]:
        stores = {"customers": self.customers, "payment_intents": self.payment_intents, "refunds": self.refunds,
                  "subscriptions": self.subscriptions, "invoices": self.invoices, "charges": self.charges}
        if resource not in stores:
            raise StripeError(404, "invalid_request_error", f"Unrecognized request URL: /v1/{resource}")
        return stores[resource]

    def _retrieve(self, args: tuple[str, ...], _params: dict[str, Any]) -> dict[str, Any]:
        resource, oid = args
        found = self._store(resource).get(oid)
        if found is None:
            raise _missing(resource.rstrip("s").replace("_", " "), oid)
        return found

    def _list(self, args: tuple[str, ...], params: dict[str, Any]) -> dict[str, Any]:
        (resource,) = args
        rows = list(reversed(self._store(resource).values()))  # newest first, as Stripe lists
        for field in ("customer", "status", "payment_intent"):
            wanted = params.get(field)
            if wanted is not None and not (field == "status" and wanted == "all"):
                rows = [row for row in rows if row.get(field) == wanted]
        created = params.get("created")
        if isinstance(created, dict):
            # Stripe's range filter: created[gte] / [gt] / [lte] / [lt], Unix seconds.
            tests = {"gte": int.__ge__, "gt": int.__gt__, "lte": int.__le__, "lt": int.__lt__}
            rows = [row for row in rows
                    if all(tests[op](row["created"], int(bound)) for op, bound in created.items())]
        return self._page(f"/v1/{resource}", rows, params)

    def _sub_list(self, args: tuple[str, ...], params: dict[str, Any]) -> dict[str, Any]:
        resource, cid, sub = args
        if (resource, sub) != ("customers", "payment_methods"):
            raise StripeError(404, "invalid_request_error", f"Unrecognized request URL: /v1/{'/'.join(args)}")
        if cid not in self.customers:
            raise _missing("customer", cid)
        return self._page(f"/v1/customers/{cid}/payment_methods", self.payment_methods[cid], params)

    def _page(self, url: str, rows: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        after = params.get("starting_after")
        if after is not None:
            ids = [row["id"] for row in rows]
            rows = rows[ids.index(after) + 1:] if after in ids else []
        limit = int(params.get("limit", 10))
        data = rows[:limit]
        if "data.latest_charge" in (params.get("expand") or []):
            data = [{**row, "latest_charge": self.charges.get(row.get("latest_charge") or "")} for row in data]
        if "data.charge" in (params.get("expand") or []):
            data = [{**row, "charge": self.charges.get(row.get("charge") or "")} for row in data]
        return {"object": "list", "url": url, "has_more": len(rows) > limit, "data": data}

    def _create(self, args: tuple[str, ...], params: dict[str, Any]) -> dict[str, Any]:
        (resource,) = args
        if resource == "payment_intents":
            return self._charge(params)
        if resource == "refunds":
            return self._refund(params)
        raise StripeError(404, "invalid_request_error", f"Unrecognized request URL: /v1/{resource}")

    def _charge(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = params.get("customer")
        if customer not in self.customers:
            raise StripeError(400, "invalid_request_error", f"No such customer: '{customer}'",
                              code="resource_missing", param="customer")
        amount = int(params["amount"])
        if amount < 50:
            raise StripeError(400, "invalid_request_error", "Amount must be at least $0.50 usd",
                              code="amount_too_small", param="amount")
        method = params.get("payment_method")
        if method not in {pm["id"] for pm in self.payment_methods[customer]}:
            raise StripeError(400, "invalid_request_error", f"No such PaymentMethod: '{method}'",
                              code="resource_missing", param="payment_method")
        pid = f"pi_{next(self._ids):06d}"
        intent = {"id": pid, "object": "payment_intent", "customer": customer, "amount": amount,
                  "amount_received": 0, "currency": params.get("currency", "usd"), "payment_method": method,
                  "description": params.get("description"), "metadata": params.get("metadata", {}),
                  "created": next(self._clock), "livemode": False, "latest_charge": None,
                  "status": "requires_payment_method"}
        self.payment_intents[pid] = intent
        declines = self._declines.get(customer)
        if declines:
            code, decline_code, message = declines.popleft()
            raise StripeError(402, "card_error", message, code=code, decline_code=decline_code,
                              extra={"payment_intent": dict(intent)})
        charge_id = f"ch_{next(self._ids):06d}"
        self.charges[charge_id] = {"id": charge_id, "object": "charge", "amount": amount, "amount_refunded": 0,
                                   "refunded": False, "payment_intent": pid, "customer": customer,
                                   "currency": intent["currency"], "status": "succeeded",
                                   "description": intent["description"], "created": intent["created"],
                                   "livemode": False}
        intent.update(status="succeeded", amount_received=amount, latest_charge=charge_id)
        return intent

    def _refund(self, params: dict[str, Any]) -> dict[str, Any]:
        intent = self.payment_intents.get(params.get("payment_intent", ""))
        if intent is None:
            raise StripeError(400, "invalid_request_error", f"No such payment_intent: '{params.get('payment_intent')}'",
                              code="resource_missing", param="payment_intent")
        charge = self.charges.get(intent["latest_charge"] or "")
        if charge is None:
            raise StripeError(400, "invalid_request_error", "This PaymentIntent does not have a successful charge "
                              "to refund.", code="charge_not_refundable")
        left = charge["amount"] - charge["amount_refunded"]
        if left == 0:
            raise StripeError(400, "invalid_request_error", f"Charge {charge['id']} has already been refunded.",
                              code="charge_already_refunded")
        amount = int(params.get("amount", left))
        if amount > left:
            raise StripeError(400, "invalid_request_error", f"Refund amount (${amount / 100:.2f}) is greater than "
                              f"unrefunded amount on charge (${left / 100:.2f})", code="amount_too_large",
                              param="amount")
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        rid = f"re_{next(self._ids):06d}"
        self.refunds[rid] = {"id": rid, "object": "refund", "amount": amount, "currency": charge["currency"],
                             "charge": charge["id"], "payment_intent": intent["id"], "status": "succeeded",
                             "metadata": params.get("metadata", {}), "created": next(self._clock)}
        return self.refunds[rid]

    def _update(self, args: tuple[str, ...], params: dict[str, Any]) -> dict[str, Any]:
        subscription = self._retrieve(args, params)
        if args[0] != "subscriptions":
            raise StripeError(404, "invalid_request_error", f"Unrecognized request URL: /v1/{'/'.join(args)}")
        if subscription["status"] == "canceled":
            raise StripeError(400, "invalid_request_error", "A canceled subscription can only update its "
                              "cancellation_details and metadata.", code="resource_invalid_state")
        if "pause_collection" in params:
            pause = params["pause_collection"]
            if pause != "" and pause.get("behavior") not in ("void", "keep_as_draft", "mark_uncollectible"):
                raise StripeError(400, "invalid_request_error", "Invalid pause_collection[behavior]",
                                  code="parameter_invalid_string", param="pause_collection[behavior]")
            subscription["pause_collection"] = None if pause == "" else {"behavior": pause["behavior"],
                                                                          "resumes_at": None}
        return subscription

    def _cancel(self, args: tuple[str, ...], params: dict[str, Any]) -> dict[str, Any]:
        subscription = self._retrieve(args, params)
        if subscription["status"] == "canceled":
            raise StripeError(400, "invalid_request_error", f"No such subscription: '{args[1]}'",
                              code="resource_missing", param="id")
        subscription.update(status="canceled", canceled_at=next(self._clock))
        return subscription


__all__ = ["API_KEY", "Call", "StripeStandIn", "decode_form"]
