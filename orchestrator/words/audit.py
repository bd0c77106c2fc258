"""The audit log's verdicts and its anchor line, as the operator reads them on the dashboard, in chat and the CLI."""
from __future__ import annotations

from orchestrator.anchors import Anchor, Anchoring, AnchorReport, Refusal
from orchestrator.messages import Message, MessageKind, Section
from orchestrator.words.common import plural, utc

# How much of a hash or signature the digest's anchor line shows: enough to notice a change by eye.
SHOWN_HEX = 12


def anchor_line(anchor: Anchor) -> str:
    """The short line the digest carries, kept in the chat history where no database role can reach it."""
    return (f"Audit anchor: event #{anchor.event_id}, hash {anchor.hash[:SHOWN_HEX]}, "
            f"signature {anchor.sig[:SHOWN_HEX]}, {utc(anchor.at)}.")


DIGEST_AUDIT_TITLE = "Audit anchor (keep this line: it vouches for the log if the database is rewritten)"


def digest_audit(done: Anchoring) -> str:
    """The digest's audit section: the anchor line, or the verdict when the log fails its check."""
    if not done.report.ok:
        return chain_verdict(done.report)
    line = anchor_line(done.anchor) if done.anchor else "No audit event to anchor yet."
    refused = refused_lines(done.report)
    return f"{line} {refused}" if refused else line


def rewritten(event_id: int) -> str:
    return f"events up to #{event_id} were rewritten or removed after they were anchored"


def refused_lines(report: AnchorReport) -> str:
    """The anchor lines that were not trusted, or "" when every line holds."""
    if not report.refused:
        return ""
    forged = [r.line for r in report.refused if r.reason is Refusal.FORGED]
    unreadable = [r.line for r in report.refused if r.reason is Refusal.UNREADABLE]
    parts = []
    if forged:
        parts.append(f"{plural(len(forged), 'anchor line')} refused, not signed with this opsos's audit key "
                     f"(forged, or the key changed): line {', '.join(map(str, forged))}")
    if unreadable:
        parts.append(f"{plural(len(unreadable), 'anchor line')} unreadable: line {', '.join(map(str, unreadable))}")
    return "; ".join(parts) + "."


def chain_verdict(report: AnchorReport) -> str:
    """One paragraph: intact or broken, how far the check reached, and any anchor line it refused."""
    if report.rewritten_up_to is not None:
        text = f"Chain BROKEN: {rewritten(report.rewritten_up_to)}."
        if report.first_broken_id is not None:
            text += f" Also broken at event {report.first_broken_id}: {report.problem}."
    elif not report.ok:
        text = (f"Chain BROKEN at event {report.first_broken_id}: {report.problem} "
                f"({plural(report.checked, 'event')} before it verified).")
    elif report.full:
        text = (f"Chain verified from the first event: {plural(report.checked, 'event')}, every link intact, "
                f"{plural(report.anchors_checked, 'anchor')} matched.")
    elif report.anchor is not None:
        text = (f"Chain verified: anchored through event #{report.anchor.event_id}, "
                f"{plural(report.checked, 'event')} since, every link intact.")
    else:
        text = f"Chain verified: {plural(report.checked, 'event')}, every link intact (no anchor yet)."
    if report.ok and report.unanchored_from is not None:
        text = f"{unanchored(report)} {text}"
    refused = refused_lines(report)
    return f"{text} {refused}" if refused else text


def unanchored(report: AnchorReport) -> str:
    """Why a chain whose links hold is not trusted: the anchor file lost anchors opsos wrote."""
    since = f" (the first from {utc(report.unanchored_since)})" if report.unanchored_since else ""
    return (f"Chain NOT TRUSTED: no anchor covers the events from #{report.unanchored_from} on{since}, though "
            f"opsos wrote anchors past them: the anchor file was deleted or replaced with an older copy. Without "
            f"those anchors, anyone with the database could have rewritten these events and the links would still "
            f"verify. Restore the anchor file from a backup and compare with the anchor lines of past digests; if "
            f"you reset it on purpose, `opsos audit anchor --accept-gap` vouches for the chain as it stands.")


def audit_alarm(report: AnchorReport) -> Message:
    """To the operator when the anchor job finds the log or its anchor file tampered with."""
    title = ("The audit log fails its check against its anchors" if not report.ok
             else "The audit log is no longer covered by its anchors" if report.unanchored_from is not None
             else "The audit anchor file has lines opsos did not sign")
    return Message(kind=MessageKind.ALERT, title=title, text=chain_verdict(report), sections=[Section(
        text="No new anchor is written over a broken chain. `opsos audit verify --full` checks every event "
             "and every anchor; compare with the anchor lines of past digests.")]
        if not report.ok or report.unanchored_from is not None else [])
