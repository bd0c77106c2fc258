"""The words a copy of approval buttons reads once decided, table-driven: `words.approval_decided`,
`words.outcome` and `as_it_reads` (pure: no platform, no database)."""
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator import Message, MessageKind, words
from orchestrator.approvals import Approval, ApprovalRequest, ApprovalState
from orchestrator.delivery import as_it_reads
from orchestrator.messages import Section

ASKED = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
DECIDED = datetime(2026, 3, 10, 9, 15, tzinfo=UTC)
WHAT = "Send 3 win-back emails"
A, B = "a0000000001", "a0000000002"


def approval(state: ApprovalState, approval_id: str = A, *, by: str | None = None, via: str | None = None,
             at: datetime | None = DECIDED, what: str = WHAT) -> Approval:
    decided = state in (ApprovalState.APPROVED, ApprovalState.REJECTED)
    return Approval(id=approval_id, run_id=7, step="send_emails", action_digest="d" * 64,
                    request=ApprovalRequest(what=what, why="Intent #1 asks for it."), state=state,
                    requested_at=ASKED, expires_at=ASKED + timedelta(hours=24),
                    decided_by=by if decided else None, decided_via=via if decided else None,
                    decided_at=at if decided else None)


@pytest.mark.parametrize(("decided", "withdrawn", "title", "text"), [
    pytest.param(approval(ApprovalState.APPROVED, by="slack:U0OPERATOR", via="slack"), None,
                 f"Approved: {WHAT}", "Approved by slack:U0OPERATOR via slack at 2026-03-10 09:15 UTC.", id="approved"),
    pytest.param(approval(ApprovalState.REJECTED, by="telegram:42", via="telegram"), None,
                 f"Rejected: {WHAT}", "Rejected by telegram:42 via telegram at 2026-03-10 09:15 UTC.", id="rejected"),
    pytest.param(approval(ApprovalState.EXPIRED), None, f"Expired: {WHAT}",
                 "Nobody decided by 2026-03-11 09:00 UTC; say “resume 7” to ask again.", id="expired"),
    pytest.param(approval(ApprovalState.VOID), None, f"Replaced: {WHAT}",
                 "The action changed after this was asked; a new approval was requested.", id="void"),
    pytest.param(approval(ApprovalState.VOID), "Run #7 was cancelled by console:operator.", f"Withdrawn: {WHAT}",
                 "Run #7 was cancelled by console:operator.", id="withdrawn"),
    pytest.param(approval(ApprovalState.APPROVED, by="console:operator", via="console"), "Run #7 ended.",
                 f"Withdrawn: {WHAT}", "Run #7 ended.", id="withdrawn wins over the recorded state"),
])
def test_approval_decided(decided: Approval, withdrawn: str | None, title: str, text: str) -> None:
    assert words.approval_decided(decided, withdrawn=withdrawn) == Message(
        kind=MessageKind.APPROVAL_DECIDED, title=title, text=text, run_id=7, approval_id=A)


def test_a_decision_time_from_another_zone_is_printed_in_utc() -> None:
    """`decided_at` from a database in another time zone (10:15 in Berlin) reads as the UTC it says: 09:15 UTC."""
    berlin = DECIDED.astimezone(ZoneInfo("Europe/Berlin"))
    text = words.approval_decided(approval(ApprovalState.APPROVED, by="slack:U0OPERATOR", via="slack", at=berlin)).text
    assert text == "Approved by slack:U0OPERATOR via slack at 2026-03-10 09:15 UTC."


def _decided(state: ApprovalState, approval_id: str, what: str = WHAT) -> Message:
    return words.approval_decided(approval(state, approval_id, by="console:operator", via="console", what=what))


@pytest.mark.parametrize(("decisions", "text"), [
    pytest.param([], "", id="no decisions"),
    pytest.param([_decided(ApprovalState.APPROVED, A)],
                 f"Approved: {WHAT} — Approved by console:operator via console at 2026-03-10 09:15 UTC.", id="one"),
    pytest.param([_decided(ApprovalState.REJECTED, B, "Refund $20.00"), _decided(ApprovalState.EXPIRED, A)],
                 "Rejected: Refund $20.00 — Rejected by console:operator via console at 2026-03-10 09:15 UTC.\n"
                 f"Expired: {WHAT} — Nobody decided by 2026-03-11 09:00 UTC; say “resume 7” to ask again.",
                 id="two, one line each in the order given"),
])
def test_outcome(decisions: list[Message], text: str) -> None:
    assert words.outcome(decisions) == Section(title="Outcome", text=text)


REQUEST = Message(kind=MessageKind.APPROVAL_REQUEST, title=f"Approval needed for run #7: {WHAT}", text="why",
                  sections=[Section(title="Preview", text="Dear Ana")], actions=words.approval_actions(A),
                  run_id=7, approval_id=A)
DIGEST = Message(kind=MessageKind.REPORT, title="Daily digest", sections=[Section(title="Waiting for you")],
                 actions=[*words.digest_approval_actions(A, 7), *words.run_actions(8),
                          *words.digest_approval_actions(B, 9)])


def _values(message: Message) -> list[str]:
    return [action.value for action in message.actions]


@pytest.mark.parametrize(("message", "decided", "buttons"), [
    pytest.param(REQUEST, [A], [], id="a request loses its three buttons"),
    pytest.param(DIGEST, [A], ["resume:8", "cancel:8", f"approve:{B}", f"reject:{B}"],
                 id="a digest keeps the run's and the other approval's buttons"),
    pytest.param(DIGEST, [A, B], ["resume:8", "cancel:8"], id="a digest with both decided keeps only run buttons"),
    pytest.param(REQUEST, [B], [f"approve:{A}", f"reject:{A}", f"why:{A}"],
                 id="a decision of another approval takes nothing off"),
])
def test_as_it_reads(message: Message, decided: list[str], buttons: list[str]) -> None:
    decisions = [_decided(ApprovalState.APPROVED, approval_id) for approval_id in decided]
    shown = as_it_reads(message, decisions)
    assert _values(shown) == buttons
    assert shown.sections == [*message.sections, words.outcome(decisions)]
    assert (shown.title, shown.text, shown.kind, shown.approval_id) == (
        message.title, message.text, message.kind, message.approval_id)


def test_as_it_reads_without_decisions_is_the_message_itself() -> None:
    assert as_it_reads(DIGEST, []) is DIGEST


def test_as_it_reads_changes_a_copy_not_the_queued_message() -> None:
    as_it_reads(REQUEST, [_decided(ApprovalState.APPROVED, A)])
    assert _values(REQUEST) == [f"approve:{A}", f"reject:{A}", f"why:{A}"] and len(REQUEST.sections) == 1
