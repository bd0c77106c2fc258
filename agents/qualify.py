"""The outreach agent's qualification task: each lead scored 0-100 against the operator's ideal-customer profile."""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from agents.base import StructuredAgent, request_prompt


class LeadScore(BaseModel):
    contact_id: str = Field(description="The lead's CRM id, from the context")
    score: int = Field(ge=0, le=100, description="How well the lead fits the profile, 0 to 100")
    reason: str = Field(description="One line: what in the lead's record fits the profile, or does not")


class LeadScores(BaseModel):
    scores: list[LeadScore] = Field(default_factory=list)
    rationale: str = Field(default="", description="How the profile was applied, in one sentence")
    cited: list[str] = Field(default_factory=list, description="Ids of the records and memories used")


SYSTEM = (
    "You are the outreach agent of a one-person business, qualifying leads. Score every lead in the context's "
    "`leads` from 0 to 100 against the ideal-customer profile in `profile`, using only what each lead's record "
    "says, and give one short line of reason each. Use each lead's CRM id. Cite the profile's memory id."
)
PROMPT = request_prompt(SYSTEM)

qualify_agent: StructuredAgent[LeadScores] = StructuredAgent("outreach.qualify", PROMPT, LeadScores)

# -- the offline tier: the profile's terms found in each lead's record, so the same leads score the same --------

_WORD = re.compile(r"[a-z0-9]+")
_FILLER = frozenset({"the", "and", "for", "with", "who", "that", "are", "our", "their", "from", "into", "per",
                     "about", "people", "ideal", "customer", "customers", "profile", "like", "any", "have", "has"})
# A lead matching this many of the profile's terms scores 100: a profile of twenty words is not twenty demands.
FULL_MATCH_TERMS = 5


def terms(text: str) -> list[str]:
    """The words of `text` that say something, singular, in order, once each (pure)."""
    found = []
    for word in _WORD.findall(text.lower()):
        if len(word) < 3 or word in _FILLER:
            continue
        found.append(word[:-1] if len(word) > 4 and word.endswith("s") else word)
    return list(dict.fromkeys(found))


def _record_text(lead: dict[str, Any]) -> str:
    attributes = lead.get("attributes") or {}
    parts = [*map(str, attributes.values()), *map(str, lead.get("tags") or []), str(lead.get("notes") or "")]
    domain = str(lead.get("email") or "").rpartition("@")[2]
    return " ".join([*parts, domain])


def score_lead(profile: list[str], lead: dict[str, Any]) -> dict[str, Any]:
    """One lead's score and reason against the profile's terms (pure)."""
    has = set(terms(_record_text(lead)))
    matched = [term for term in profile if term in has]
    score = round(100 * min(len(matched), FULL_MATCH_TERMS) / max(1, min(len(profile), FULL_MATCH_TERMS)))
    if not matched:
        reason = "nothing in the record matches the profile"
    else:
        missing = [term for term in profile if term not in has][:3]
        reason = f"matches {', '.join(matched[:4])}" + (f"; not {', '.join(missing)}" if missing else "")
    return {"contact_id": str(lead.get("id", "")), "score": score, "reason": reason}


def offline_qualify(context: dict[str, Any]) -> dict[str, Any]:
    profile = terms(str(context.get("profile") or ""))
    leads = [lead for lead in context.get("leads") or [] if isinstance(lead, dict)]
    cited = [str(context["profile_memory"])] if context.get("profile_memory") else []
    return {"scores": [score_lead(profile, lead) for lead in leads],
            "rationale": f"Each lead's record compared with the profile's terms: {', '.join(profile[:8])}.",
            "cited": cited + [f"crm:{lead['id']}" for lead in leads if "id" in lead]}
