"""What opsos says about backups: the nightly one's line in the digest, its alarm, and the restore's verdict."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from orchestrator.messages import Message, MessageKind

DIGEST_BACKUP_TITLE = "Backup"


def size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"


def backup_made(path: str, n: int, head: int | None) -> str:
    signed = f"audit head #{head} signed" if head is not None else "no audit event yet"
    return f"backup written to {path} ({size(n)}, {signed})"


def digest_backup(slot: datetime | None, result: dict[str, Any] | None, *, zone: ZoneInfo, keep: int) -> str:
    """The digest's line on the newest nightly backup (None: none has run)."""
    if slot is None or result is None:
        return "no nightly backup has run yet (`opsos backup` makes one now)"
    when = f"{slot.astimezone(zone):%a %d %b %H:%M}"
    if "failed" in result:
        return f"the backup of {when} FAILED: {result['failed']}. Run `opsos backup` to try again."
    if not result.get("chain_ok", True):
        return (f"the backup of {when} was written, but the audit chain did not verify, so its head is not "
                "signed: run `opsos audit verify`")
    return f"{when}: {size(int(result['bytes']))}, audit head #{result['head']} signed; the newest {keep} kept"


def backup_failed(error: str) -> Message:
    return Message(
        kind=MessageKind.ALERT,
        title="Last night's backup failed; the records are safe in the database, but nothing copies them.",
        text=f"{error}\nFix the cause (free space, the backup folder OPSOS_BACKUP_DIR) and run `opsos backup`.",
    )


def backup_unsigned() -> Message:
    return Message(
        kind=MessageKind.ALERT,
        title="Last night's backup was written, but the audit log did not verify, so I did not sign its head.",
        text="Run `opsos audit verify` to see which event broke the chain.",
    )


def restore_verdict(*, verified: bool, problem: str, chain_ok: bool, checked: int, head: int | None) -> str:
    if verified:
        return f"restored and proved: {checked} audit events re-hashed, the signed head #{head} found at the end"
    why = problem or ("the audit chain does not verify" if not chain_ok else "an anchor line was refused")
    return f"restored, but NOT proved: {why}. Run `opsos audit verify --full` for the first broken link."
