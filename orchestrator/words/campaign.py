"""How the win-back campaign asks: the emails, the charges they lead to, and charges that changed since approved."""
from __future__ import annotations

from orchestrator.approvals import ApprovalRequest
from orchestrator.intents import Intent
from orchestrator.messages import Fact
from orchestrator.words.common import money, plural

# Names in one line before "and K more": a Slack field holds 2,000 characters, and a list of hundreds would push
# the buttons' message past Telegram's 4,096 into several parts.
LISTED = 8


def listed(items: list[str], limit: int = LISTED, *, sep: str = ", ") -> str:
    """Items in a line, the first `limit` of them and how many more (pure)."""
    if not items:
        return "nobody"
    rest = len(items) - limit
    return sep.join(items[:limit]) + (f"{sep}and {rest} more" if rest > 0 else "")


def _charges_line(charges: list[tuple[str, int]]) -> str:
    total = sum(cents for _, cents in charges) / 100
    return (f"{plural(len(charges), 'renewal')}, {money(total)} in total: "
            + listed([f"{name} {money(cents / 100)}" for name, cents in charges]))


def campaign_request(*, intent: Intent, offer: str, rationale: str, subject: str, preview: str, sender: str,
                     recipients: list[tuple[str, str]], charges: list[tuple[str, int]],
                     attempts: int) -> ApprovalRequest:
    """The win-back ask: it names the emails and, plainly, the charges approving them leads to.

    `recipients` are (name, address); `charges` (name, amount in cents), one per subscriber."""
    total = sum(cents for _, cents in charges) / 100
    return ApprovalRequest(
        what=(f"Email {plural(len(recipients), 'lapsed subscriber')} the offer “{offer}”, "
              f"then charge them {money(total)} in total"),
        why=(f"Intent #{intent.id} asks: “{intent.request}”. {rationale} Approving lets both happen: the emails "
             f"go out now, then each renewal is retried at the offered price ({plural(attempts, 'attempt')}); a "
             f"renewal still declined pauses that subscriber's access."),
        facts=[
            Fact(label="Recipients", value=listed([f"{name} <{address}>" for name, address in recipients])),
            Fact(label="Subject", value=subject or "—"),
            Fact(label="Sent from", value=sender),
            Fact(label="Then charges", value=_charges_line(charges)),
        ],
        estimated_cost_usd=0.0,
        preview=preview,
    )


def renewals_request(charges: list[tuple[str, int]]) -> ApprovalRequest:
    """The ask of a careful intent before the renewals, which policy would otherwise let run."""
    total = sum(cents for _, cents in charges) / 100
    return ApprovalRequest(
        what=f"Charge {plural(len(charges), 'win-back renewal')}, {money(total)} in all?",
        why="You asked me to be careful with this request, so every outside action waits for you, also the "
            "renewals the subscriptions already authorise.",
        facts=[Fact(label="Charges", value=_charges_line(charges))],
        estimated_cost_usd=0.0,
    )


def renewals_changed(*, approved: dict[str, int], now: dict[str, int], names: dict[str, str]) -> ApprovalRequest:
    """The ask when the renewals to charge are not the ones the approved campaign named (amounts in cents by
    customer id; `now` names no one `approved` does not): what changed, subscriber by subscriber, and that
    nothing is charged until the operator decides."""
    changes = [f"{names.get(c, c)}: {money(approved[c] / 100)} → {money(now[c] / 100)}"
               for c in approved if c in now and now[c] != approved[c]]
    changes += [f"{names.get(c, c)}: left out, no longer lapsed" for c in approved if c not in now]
    charges = [(names.get(c, c), cents) for c, cents in now.items()]
    before = sum(approved.values()) / 100
    return ApprovalRequest(
        what=(f"Charge {plural(len(now), 'win-back renewal')}, {money(sum(now.values()) / 100)} in all, "
              f"not what you approved"),
        why=(f"The campaign you approved said it would then charge {plural(len(approved), 'subscriber')} "
             f"{money(before)} in total. The CRM changed since, so nothing is charged until you decide."),
        facts=[Fact(label="Charges", value=_charges_line(charges)),
               Fact(label="Changed since you approved", value=listed(changes, sep="\n"))],
        estimated_cost_usd=0.0,
    )
