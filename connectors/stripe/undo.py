"""What undoing a Stripe action reads before it acts: the key its undoing is claimed under, the answers that need
no call to Stripe, and the state of a claim whose worker never recorded Stripe's answer."""
from __future__ import annotations

from connectors.idempotency import ActionRecord

NOTHING_CHARGED = "nothing was charged"
# A claim left pending: whether its owner may still be acting (its claim not run out, as `idempotency.CLAIM`
# decides), and the request it was made for (a charge's customer, to find the charge in Stripe by).
PENDING_CLAIM = """
SELECT request, owner IS NOT NULL AND claimed_until > clock_timestamp() AS live,
       greatest(extract(epoch FROM claimed_until - clock_timestamp()), 0)::float8 AS remaining
FROM connector_actions WHERE key = %s
"""


# The undoing of a charge whose answer was never recorded takes the charge's key over: an attempt that outlived its
# claim and answers late then finds the key another's (`idempotency.FINISH` records only under its owner).
TAKE_OVER = "UPDATE connector_actions SET owner = %s, updated_at = now() WHERE key = %s AND state = 'pending'"


def undo_key(key: str) -> str:
    """The opsos key the undoing of `key`'s action is claimed under: `key` extended, so it stays with its run."""
    return f"{key}:undo"


def final_word(record: ActionRecord) -> str | None:
    """What compensating `record` says without acting: it cannot be taken back, or it was undone; else None."""
    if record.action == "refund":
        return "a refund cannot be taken back"
    if record.action == "cancel_subscription":
        return "a cancelled subscription cannot be taken back"
    if record.action == "resume_collection":
        return "resumed collection is left running"
    if record.state == "compensated":
        return "already refunded" if record.action == "charge" else "already resumed"
    return None
