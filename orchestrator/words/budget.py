"""The budget's words: alerts at a threshold, asks for a raise, a step that used a cheaper tier."""
from __future__ import annotations

from orchestrator.approvals import ApprovalRequest
from orchestrator.messages import Fact, Message, MessageKind
from orchestrator.words.common import money


def budget_alert(cap_name: str, threshold: int, spent: float, cap: float) -> Message:
    reached = "reached" if threshold >= 100 else "passed"
    own = cap_name.startswith("intent #")
    text = ("Model calls now wait until the cap resets or is raised." if threshold >= 100 and not own
            else "Its model calls now wait until you raise its budget." if threshold >= 100
            else "Calls go on; this is an early warning.")
    title = (f"Model spend {'on ' if own else ''}{cap_name} has {reached} {threshold}% of its "
             f"{'budget' if own else 'cap'}: {money(spent)} of {money(cap)}.")
    return Message(kind=MessageKind.ALERT, title=title, text=text)


def budget_request(*, step: str, tier: str, cap: str, spent: float, limit: float, raise_usd: float,
                   waiting: bool) -> ApprovalRequest:
    """The ask when a model call does not fit its budget: approving raises the named cap by `raise_usd`."""
    what = (f"Budget: the {cap} cap is reached; raise it by {money(raise_usd)} so “{step}” can go on?" if waiting
            else f"Budget: “{step}” needs about {money(raise_usd)} more on the {cap} cap: approve?")
    # An intent's own budget lasts as long as the intent: it never resets, so only a raise lets the run go on.
    lasts = ("raises this request's own budget" if cap.startswith("intent #")
             else "raises the cap for this period only")
    why = (f"The {tier}-tier call of “{step}” does not fit: {money(spent)} of {money(limit)} is spent or held. "
           f"Approving {lasts}; rejecting cancels the run. Until then the run waits for budget and nothing is "
           "charged.")
    return ApprovalRequest(what=what, why=why, estimated_cost_usd=raise_usd, facts=[
        Fact(label="Cap", value=f"{cap}: {money(spent)} of {money(limit)}"),
        Fact(label="Raise", value=f"+{money(raise_usd)}"),
        Fact(label="Tier", value=tier),
    ])


def stepped_down(step: str, from_tier: str, to_tier: str) -> str:
    return f"“{step}” used the {to_tier} tier instead of {from_tier}: the budget was near its cap"


def waiting_for_budget(approval_id: str) -> str:
    return (f"waiting for budget — “approve {approval_id}” raises the cap (a day's or month's cap also resets; "
            "a request's own budget does not)")
