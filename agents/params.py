"""Parameter extraction: a request in words to a typed model per intent kind, by the draft tier.

A field the request does not state stays empty: the prompt says so, and `missing` also treats a
name the request never mentions as missing, so a value a model made up is asked for, not used.
"""
from __future__ import annotations

import re
from datetime import date
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from agents.base import StructuredAgent, agent_prompt


class KindParams(BaseModel):
    """Base of every kind's parameters: which are required, which must appear in the request's own words."""

    REQUIRED: ClassVar[tuple[str, ...]] = ()
    GROUNDED: ClassVar[tuple[str, ...]] = ()


class ContentParams(KindParams):
    REQUIRED = ("topic",)
    topic: str | None = Field(default=None, description="What the post is about, in the request's words")
    channel: Literal["blog", "newsletter", "social"] | None = Field(default=None, description="Where it goes")


class OutreachParams(KindParams):
    REQUIRED = ("recipient",)
    GROUNDED = ("recipient",)
    recipient: str | None = Field(default=None, description="Name, email or CRM id of the person to write to")
    purpose: str | None = Field(default=None, description="Why we write, in a few words")


class BookkeepingParams(KindParams):
    REQUIRED = ("period",)
    period: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}$", description="The month, as YYYY-MM")


class AccountParams(KindParams):
    REQUIRED = ("customer",)
    GROUNDED = ("customer",)
    customer: str | None = Field(default=None, description="Name, email or CRM id of the customer")


class RefundParams(AccountParams):
    # No amount means the full amount of the customer's latest charge; the approval shows which.
    amount_cents: int | None = Field(default=None, gt=0, description="Amount to refund in cents, if stated")


SYSTEM = (
    "Extract the parameters of the operator's request into the schema. Copy names, emails and ids exactly "
    "as written. Leave a field null when the request does not state it: never guess or fill in a default. "
    "The request is the intent's `request` in the context; the earlier conversation only explains it, so take "
    "values from the request itself. Today is given in the context."
)
PROMPT = agent_prompt(SYSTEM, "Context:\n{context}")


def extraction_agent(kind: str, schema: type[KindParams]) -> StructuredAgent[Any]:
    return StructuredAgent(f"params.{kind}", PROMPT, schema)


def missing(params: KindParams, request: str) -> list[str]:
    """Required fields that are empty, or name something the request never says (pure)."""
    lowered = request.lower()
    gaps = []
    for name in type(params).REQUIRED:
        value = getattr(params, name)
        if value in (None, "") or (name in type(params).GROUNDED and str(value).lower() not in lowered):
            gaps.append(name)
    return gaps


# -- the offline tier's extraction: rules, so the free tier never invents what a model might ----------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CRM_ID = re.compile(r"\bc-[a-z0-9]+\b")
_NAME_AFTER = re.compile(r"\b(?:for|to|of|with|from|refund|pause|resume|email)\s+([A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?)")
_POSSESSIVE = re.compile(r"\b([A-Z][a-z]+)'s\b")
_ABOUT = re.compile(r"\b(?:about|on)\s+(.+?)(?:[.?!]|$)", re.IGNORECASE)
_AMOUNT = re.compile(r"\$\s?(\d+(?:\.\d{1,2})?)")
_YEAR_MONTH = re.compile(r"\b(20\d\d)-(0[1-9]|1[0-2])\b")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
_NOT_NAMES = {"I", "We", "The", "This", "My", "Our", "A", "An", "It", "Please", "LinkedIn", "March", "May"}


def _who(text: str) -> str | None:
    for pattern in (_EMAIL, _CRM_ID):
        if match := pattern.search(text):
            return match.group(0)
    for pattern in (_NAME_AFTER, _POSSESSIVE):
        for match in pattern.finditer(text):
            if match.group(1).split()[0] not in _NOT_NAMES:
                return match.group(1)
    return None


def _request(context: dict[str, Any]) -> str:
    # A snapshot carries the request in its intent; plain data (the unit tests) may carry it at the top.
    return str(context.get("request") or (context.get("intent") or {}).get("request") or "")


def _today(context: dict[str, Any]) -> date:
    return date.fromisoformat(str(context.get("today") or date.today().isoformat()))


def _period(text: str, today: date) -> str | None:
    lowered = text.lower()
    if match := _YEAR_MONTH.search(text):
        return f"{match.group(1)}-{match.group(2)}"
    if "last month" in lowered:
        year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
        return f"{year}-{month:02d}"
    if "this month" in lowered or "this month's" in lowered:
        return f"{today.year}-{today.month:02d}"
    for number, name in enumerate(MONTHS, start=1):
        if re.search(rf"\b{name}\b", lowered):
            year = today.year if number <= today.month else today.year - 1
            return f"{year}-{number:02d}"
    return None


def _channel(text: str) -> str | None:
    lowered = text.lower()
    if "newsletter" in lowered:
        return "newsletter"
    if any(word in lowered for word in ("linkedin", "tweet", "social", "thread")):
        return "social"
    return "blog" if any(word in lowered for word in ("blog", "article")) else None


def offline_content_params(context: dict[str, Any]) -> dict[str, Any]:
    request = _request(context)
    about = _ABOUT.search(request)
    return {"topic": about.group(1).strip() if about else None, "channel": _channel(request)}


def offline_outreach_params(context: dict[str, Any]) -> dict[str, Any]:
    request = _request(context)
    about = _ABOUT.search(request)
    return {"recipient": _who(request), "purpose": about.group(1).strip() if about else None}


def offline_bookkeeping_params(context: dict[str, Any]) -> dict[str, Any]:
    return {"period": _period(_request(context), _today(context))}


def offline_account_params(context: dict[str, Any]) -> dict[str, Any]:
    return {"customer": _who(_request(context))}


def offline_refund_params(context: dict[str, Any]) -> dict[str, Any]:
    request = _request(context)
    amount = _AMOUNT.search(request)
    return {"customer": _who(request), "amount_cents": round(float(amount.group(1)) * 100) if amount else None}


OFFLINE_PARAM_TEMPLATES = {
    "ContentParams": offline_content_params,
    "OutreachParams": offline_outreach_params,
    "BookkeepingParams": offline_bookkeeping_params,
    "AccountParams": offline_account_params,
    "RefundParams": offline_refund_params,
}
