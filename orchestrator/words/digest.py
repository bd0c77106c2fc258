"""The daily digest's title, summary line and empty sections."""
from __future__ import annotations

from datetime import date, datetime, timedelta


def digest_title(day_covered: date, *, late_by: timedelta | None = None, due_at: datetime | None = None) -> str:
    title = f"Daily digest for {day_covered:%a %d %b %Y}"
    if late_by is not None and due_at is not None:
        hours, minutes = divmod(int(late_by.total_seconds() // 60), 60)
        title += f" (late: due {due_at:%H:%M}, sent {hours}h{minutes:02d} later, after opsos was down)"
    return title


def digest_summary(*, finished: int, failed: int, waiting: int, stuck: int, at_risk: int, spent: str,
                   cap: str) -> str:
    return (f"Yesterday {finished} run{'s' if finished != 1 else ''} finished ({failed} not succeeded); "
            f"{waiting} approval{'s' if waiting != 1 else ''} wait{'s' if waiting == 1 else ''} for you; "
            f"{stuck} workflow{'s' if stuck != 1 else ''} failing or stuck; {at_risk} intent"
            f"{'s' if at_risk != 1 else ''} at risk of missing {'its' if at_risk == 1 else 'their'} deadline; "
            f"{spent} of {cap} spent today.")


def digest_empty(section: str) -> str:
    return {"finished": "no run finished", "waiting": "nothing waits for you", "stuck": "nothing is stuck",
            "at_risk": "every deadline is safe"}.get(section, "none")
