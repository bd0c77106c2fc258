"""The verdict, read from the outside world's own records: what the stand-ins received and the payments ledger.

opsos's tables are read only where they are the thing checked: a run's state and reason, an intent for each
accepted request, the audit chain, budget reservations. Duplicates are counted from what was delivered:
emails per (recipient, Message-ID), charges and refunds per idempotency key, chat messages per (conversation,
content). Neither Slack's nor Telegram's API carries anything that names the outbox row a message came from,
so two posts of the same content to the same conversation count as one duplicate; every message opsos sends
names its run or intent, so two distinct rows never render the same.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.faults.inbound import Inbound
from tests.standins import SlackStandIn, SmtpStandIn, TelegramStandIn

FINISHED = ("succeeded", "failed", "compensated", "cancelled")
HELD = ("paused", "awaiting_approval")
LIVE = ("queued", "running", "compensating")


@dataclass
class Verdict:
    runs: Counter[str] = field(default_factory=Counter)
    held_without_reason: list[int] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    unfinished: list[int] = field(default_factory=list)
    duplicates: Counter[str] = field(default_factory=Counter)
    duplicate_detail: list[str] = field(default_factory=list)
    # Sent again after the outside system took the first copy and its answer never came back (see UNANSWERED).
    resent: Counter[str] = field(default_factory=Counter)
    resent_detail: list[str] = field(default_factory=list)
    losses: Counter[str] = field(default_factory=Counter)
    loss_detail: list[str] = field(default_factory=list)
    requests_accepted: int = 0
    requests_refused: int = 0
    audit_ok: bool = False
    audit_checked: int = 0
    audit_error: str = ""
    open_reservations: int = 0
    undelivered: int = 0

    @property
    def clean(self) -> bool:
        return (not self.duplicates and not self.losses and self.audit_ok and not self.open_reservations
                and not self.unfinished and not self.held_without_reason)


# A copy sent again after an earlier one was accepted but never answered (the stand-in cut the connection) is the
# ambiguity a sender cannot resolve without the receiver's help: SMTP and Telegram's sendMessage take no
# idempotency key, so opsos sends again with the same Message-ID (a receiver that dedupes on it shows one). These
# are counted apart and reported, not failed; any other duplicate means opsos did the act twice, and fails.
UNANSWERED = " after an unanswered accept"


def _count(verdict: Verdict, kind: str, groups: dict[Any, list[bool]], describe: Any) -> None:
    """`groups` maps what was delivered to whether each copy was answered, in order."""
    for key, answered in sorted(groups.items(), key=lambda kv: str(kv[0])):
        if len(answered) < 2:
            continue
        if all(answered[:-1]):
            verdict.duplicates[kind] += len(answered) - 1
            verdict.duplicate_detail.append(f"{kind}: {describe(key)} x{len(answered)}")
        else:
            label = kind + UNANSWERED
            verdict.resent[label] += len(answered) - 1
            verdict.resent_detail.append(f"{label}: {describe(key)} x{len(answered)}")


def emails(verdict: Verdict, smtp: SmtpStandIn) -> None:
    groups: dict[tuple[str, str], list[bool]] = {}
    for message in smtp.messages:
        for rcpt in message.rcpt_tos:
            key = (rcpt.lower(), message.message_id or message.message.get("Subject", ""))
            groups.setdefault(key, []).append(message.answered)
    _count(verdict, "email", groups, lambda key: f"to {key[0]} {key[1]}")


def _posted(call: Any) -> tuple[bool, bool]:
    """Whether the call posted a message, and whether its answer reached the client."""
    response, answered = call.response, call.status != 0
    if isinstance(response, dict) and response.get("dropped"):
        response = response.get("would_answer")
    return isinstance(response, dict) and bool(response.get("ok")), answered


def chat(verdict: Verdict, slack: SlackStandIn, telegram: TelegramStandIn) -> None:
    slack_posts: dict[tuple[str, str], list[bool]] = {}
    for call in slack.calls_to("chat.postMessage"):
        posted, answered = _posted(call)
        if posted:
            content = json.dumps([call.params.get("text"), call.params.get("blocks")], sort_keys=True)
            slack_posts.setdefault((str(call.params.get("channel")), content), []).append(answered)
    _count(verdict, "slack message", slack_posts, lambda key: f"{key[0]} {json.loads(key[1])[0]!r:.80}")
    telegram_posts: dict[tuple[str, str], list[bool]] = {}
    for method in ("sendMessage", "sendPhoto"):
        for call in telegram.calls_to(method):
            posted, answered = _posted(call)
            if posted:
                content = str(call.params.get("text") or call.params.get("caption") or "")
                telegram_posts.setdefault((str(call.params.get("chat_id")), f"{method}:{content}"), []).append(answered)
    _count(verdict, "telegram message", telegram_posts, lambda key: f"{key[0]} {key[1]!r:.80}")


def payments(verdict: Verdict, conn: psycopg.Connection) -> None:
    rows = conn.execute("SELECT key, kind, count(*) AS n FROM payments_ledger WHERE status = 'succeeded'"
                        " GROUP BY key, kind HAVING count(*) > 1").fetchall()
    for row in rows:
        verdict.duplicates[row["kind"]] += row["n"] - 1
        verdict.duplicate_detail.append(f"{row['kind']} {row['key']} x{row['n']}")


def intents(verdict: Verdict, conn: psycopg.Connection, inbound: Inbound) -> None:
    """Every request some copy of which got a 200 has its intent, once; every accepted click was decided."""
    keys = Counter(row["dedupe_key"] for row in conn.execute("SELECT dedupe_key FROM intents").fetchall())
    for request in inbound.requests:
        if not request.accepted:
            verdict.requests_refused += 1
            continue
        verdict.requests_accepted += 1
        if keys.get(request.key, 0) == 0:
            verdict.losses["intent"] += 1
            verdict.loss_detail.append(f"intent for {request.key} ({request.platform} {request.what!r:.40}), "
                                       f"answers {request.statuses}, first body {request.bodies[:1]}")
    decided = {row["id"]: row["state"] for row in conn.execute("SELECT id, state FROM approvals").fetchall()}
    clicked = {c.key for c in inbound.clicks if c.accepted}
    for approval_id in sorted(clicked):
        if decided.get(approval_id) == "pending":
            verdict.losses["decision"] += 1
            verdict.loss_detail.append(f"approval {approval_id}: a click got 200, still pending")
    # The operator presses every Approve button shown: one still pending and never pressed never reached chat.
    for approval_id, state in sorted(decided.items()):
        if state == "pending" and inbound.attempts(approval_id) == 0:
            verdict.losses["approval request"] += 1
            verdict.loss_detail.append(f"approval {approval_id}: pending, its buttons never reached chat")


def runs(verdict: Verdict, conn: psycopg.Connection) -> None:
    for row in conn.execute("SELECT id, state, reason FROM runs ORDER BY id").fetchall():
        verdict.runs[row["state"]] += 1
        if row["state"] in LIVE:
            verdict.unfinished.append(row["id"])
        elif row["state"] in HELD:
            verdict.held.append(f"run {row['id']} {row['state']}: {row['reason']}")
            if not row["reason"]:
                verdict.held_without_reason.append(row["id"])


def audit_chain(verdict: Verdict, conn: psycopg.Connection) -> None:
    from orchestrator import audit

    report = audit.verify(conn)
    verdict.audit_ok, verdict.audit_checked = report.ok, report.checked
    verdict.audit_error = "" if report.ok else str(report)


def budget(verdict: Verdict, conn: psycopg.Connection) -> None:
    verdict.open_reservations = conn.execute(
        "SELECT count(*) AS n FROM budget_calls WHERE state = 'reserved'").fetchone()["n"]


def outbox(verdict: Verdict, conn: psycopg.Connection) -> None:
    verdict.undelivered = conn.execute(
        "SELECT count(*) AS n FROM outbox WHERE state = 'pending' AND channel IN ('slack', 'telegram')"
    ).fetchone()["n"]


def judge(database_url: str, *, smtp: SmtpStandIn, slack: SlackStandIn, telegram: TelegramStandIn,
          inbound: Inbound) -> Verdict:
    verdict = Verdict()
    emails(verdict, smtp)
    chat(verdict, slack, telegram)
    with psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as conn:
        payments(verdict, conn)
        intents(verdict, conn, inbound)
        runs(verdict, conn)
        audit_chain(verdict, conn)
        budget(verdict, conn)
        outbox(verdict, conn)
    return verdict
