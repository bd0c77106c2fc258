"""Retention: the rows that grow with use pruned once older than `OPSOS_RETENTION_DAYS`, each table's rule here.

Never pruned: audit events (append-only; the chain and replay are built from them), runs, steps, approvals,
intents and agent calls (replay compares a run's events with those rows, so removing them would make an old
run disagree with its own log). What may go is what only served delivery, sign-in, the once-per-slot promise
and the budget's bookkeeping after the fact, and only once nothing live needs it:
  - outbox: delivered or dropped rows, but not a row of a run still live (or of an intent with a live run), not a
    copy that still carries buttons of a pending approval, not a copy or an edit while the other one stays, and
    not a row whose dedupe key still guards a once-only message (see `ONCE_ONLY`);
  - schedule slots: all but each job's latest, which `scheduler.RAN_BEFORE` needs to tell a missed digest
    (sent late) from a new install's first start;
  - dashboard sessions and sign-in links: those expired before the cut;
  - budget calls: settled or released reservations of finished runs (and run-less ones); an open one stays;
  - connector records: finished actions, except every key of a run not yet finished (`connectors.prune_actions`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from psycopg import Connection
from pydantic import BaseModel

from connectors import prune_actions
from orchestrator import audit, keys
from orchestrator.runs import FINISHED

log = structlog.get_logger(__name__)

ACTOR = "retention"
# A dedupe key of the outbox promises a message once per something: a digest per slot, a budget alert per cap,
# period and threshold (the longest period a month), an SLA alert per intent. A keyed row is kept at least this
# long whatever the setting, so a short retention cannot let the same month's alert go out again.
ONCE_ONLY = timedelta(days=32)

LIVE_RUNS = "SELECT id FROM runs WHERE NOT (state = ANY(%(finished)s::text[]))"

# The rows an outbox prune may take: delivered or dropped before the cut, of no live run or intent, carrying no
# pending approval's buttons, and any once-only key past its guard (an SLA alert's or an intent budget's intent
# named in the key, as `scheduler.check_sla` and `budget.alert_key` build them, must be finished too).
_OUTBOX_CANDIDATES = """
SELECT o.id, o.edit_of FROM outbox o
WHERE o.state IN ('delivered', 'dropped') AND o.created_at < %(before)s
  AND (o.dedupe_key IS NULL OR o.created_at < %(once_only_before)s)
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE NOT (r.state = ANY(%(finished)s::text[]))
                  AND (r.id = o.run_id OR r.intent_id = o.intent_id
                       OR r.intent_id = substring(o.dedupe_key FROM '^(?:sla:|budget:intent #)([0-9]+)')::bigint))
  AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.id = ANY(o.approval_buttons) AND a.state = 'pending')
"""
# A copy goes with all its edits or not at all: delivery reads a copy's earlier edits to know what it shows, and
# an edit names its copy (`edit_of`). One statement deletes both, so the reference is never left dangling.
OUTBOX_PRUNABLE = f"""
WITH candidate AS ({_OUTBOX_CANDIDATES}),
     held AS (SELECT e.edit_of AS id FROM outbox e
              WHERE e.edit_of IS NOT NULL AND e.id NOT IN (SELECT id FROM candidate))
SELECT c.id FROM candidate c
WHERE coalesce(c.edit_of, c.id) NOT IN (SELECT id FROM held)
  AND (c.edit_of IS NULL OR c.edit_of IN (SELECT id FROM candidate))
"""
SLOTS_PRUNABLE = """
SELECT s.job, s.slot FROM schedule_slots s
WHERE s.slot < %(before)s AND s.slot < (SELECT max(l.slot) FROM schedule_slots l WHERE l.job = s.job)
"""
SESSIONS_PRUNABLE = "SELECT id_hash FROM dashboard_sessions WHERE expires_at < %(before)s"
SIGNINS_PRUNABLE = "SELECT token_hash FROM dashboard_signins WHERE expires_at < %(before)s"
BUDGET_CALLS_PRUNABLE = """
SELECT c.id FROM budget_calls c
WHERE c.state IN ('settled', 'released') AND coalesce(c.settled_at, c.reserved_at) < %(before)s
  AND (c.run_id IS NULL OR c.run_id NOT IN (SELECT id FROM runs WHERE NOT (state = ANY(%(finished)s::text[]))))
"""


@dataclass(frozen=True)
class Rule:
    """One table's rule: the query of the keys of the rows that may go (pure data; `prune` runs it)."""

    table: str
    key: str
    prunable: str

    @property
    def delete(self) -> str:
        return f"DELETE FROM {self.table} WHERE ({self.key}) IN ({self.prunable})"

    @property
    def count(self) -> str:
        return f"SELECT count(*) AS n FROM ({self.prunable}) AS prunable"


RULES: tuple[Rule, ...] = (
    Rule("outbox", "id", OUTBOX_PRUNABLE),
    Rule("schedule_slots", "job, slot", SLOTS_PRUNABLE),
    Rule("dashboard_sessions", "id_hash", SESSIONS_PRUNABLE),
    Rule("dashboard_signins", "token_hash", SIGNINS_PRUNABLE),
    Rule("budget_calls", "id", BUDGET_CALLS_PRUNABLE),
)
CONNECTOR_ACTIONS = "connector_actions"


class Pruned(BaseModel):
    """What a prune removed (or, on a dry run, would remove): rows per table, and the cut it used."""

    before: datetime | None
    dry_run: bool
    counts: dict[str, int]


def cut(now: datetime, days: int) -> datetime | None:
    """The moment before which rows may go, `days` before `now`; None when `days` is 0 (keep everything)."""
    return now - timedelta(days=days) if days > 0 else None


def prune(conn: Connection, *, now: datetime, older_than_days: int, dry_run: bool = False) -> Pruned:
    """Prune every table by its rule in the caller's transaction, and with it append one `retention.pruned`
    audit event; a dry run counts and changes nothing. `older_than_days` 0 keeps everything.

    Concurrency: each delete reads its rule's conditions in its own statement's snapshot, and only rows no
    writer still changes qualify (a delivered or dropped outbox row, a slot behind its job's latest, a finished
    run's records), so a concurrent deliverer, scheduler or step never loses a row it is about to use.
    """
    before = cut(now, older_than_days)
    if before is None:
        return Pruned(before=None, dry_run=dry_run, counts={})
    params: dict[str, Any] = {"before": before, "once_only_before": min(before, now - ONCE_ONLY),
                              "finished": [state.value for state in FINISHED]}
    counts: dict[str, int] = {}
    for rule in RULES:
        if dry_run:
            counts[rule.table] = int(conn.execute(rule.count, params).fetchone()["n"])
        else:
            counts[rule.table] = conn.execute(rule.delete, params).rowcount
    live = [keys.run_prefix(row["id"]) for row in conn.execute(LIVE_RUNS, params).fetchall()]
    counts[CONNECTOR_ACTIONS] = prune_actions(conn, before=before, keep_prefixes=live, dry_run=dry_run)
    if not dry_run:
        audit.append(conn, actor=ACTOR, kind="retention.pruned", at=now,
                     payload={"before": before.isoformat(), "days": older_than_days, "counts": counts})
    log.info("retention.pruned", before=before.isoformat(), dry_run=dry_run, **counts)
    return Pruned(before=before, dry_run=dry_run, counts=counts)
