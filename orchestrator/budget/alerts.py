"""Budget alerts: the operator told once per cap, period and threshold (50 / 80 / 100 %), with an audit event."""
from __future__ import annotations

from datetime import datetime

from psycopg import Connection

from orchestrator import audit, outbox, words
from orchestrator.budget.planning import Period, Standing, alert_key, cap_name, crossed


def post_alerts(conn: Connection, after: list[Standing], *, channel: str, conversation: str, now: datetime,
                force_full: Period | None = None) -> list[str]:
    """Tell the operator a 50 / 80 / 100 % threshold reached, once per cap, period and threshold (the outbox
    dedupes on the same keys as the scheduler's budget check, so neither repeats the other).

    `force_full` marks a cap that just refused a call: for the operator that cap is reached even if
    the reservations that fill it are not yet spent.
    """
    posted = []
    for standing in after:
        thresholds = crossed(standing)
        if force_full is not None and standing.period == force_full and 100 not in thresholds:
            thresholds.append(100)
        if not thresholds:
            continue
        # Only the highest one reached, as the scheduler's check does: a jump from 10 % to 90 % is one alert.
        threshold = max(thresholds)
        key = alert_key(standing.period, threshold)
        message = words.budget_alert(cap_name(standing.period), threshold, standing.spent, standing.cap or 0.0)
        if outbox.post(conn, channel=channel, conversation=conversation, message=message, dedupe_key=key):
            audit.append(conn, actor="budget", kind="budget.alert", at=now,
                         payload={"cap": cap_name(standing.period), "threshold": threshold,
                                  "spent": standing.spent, "limit": standing.cap})
            posted.append(key)
    return posted
