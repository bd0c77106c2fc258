"""Anchors of the audit chain outside the database: the chain's head, signed with a key the database never holds.

The chain's sha256 is unkeyed, so whoever can write `audit_events` (the app's database role with the
triggers dropped, a superuser) can rewrite an event and recompute every hash after it. An anchor is
what they cannot recompute: one JSON line `{"event_id", "hash", "at", "sig"}` appended to the anchor
file, `sig` being HMAC-SHA256 under the audit key over the other three. A rewrite or a truncation at
or before an anchored event changes or removes the hash the anchor holds.

`verify` is incremental: it checks every anchor's signature, that the newest valid anchor's event
still has that hash, and re-hashes only the events after it, so a page load costs the events of the
last few minutes, not the whole log. `verify(full=True)` re-hashes from the first event and checks
every anchor. `anchor` re-hashes from the newest anchor to the head and signs the head.

A deleted anchor file, or one replaced with an older copy, leaves only the unkeyed chain, which verifies however
it was rewritten. So each anchor written is also marked in the database (`audit_anchor_marks`: the event it
covers): a file whose newest anchor is older than the newest mark lost anchors it had. The check then reports
the chain not trusted (`unanchored_from`, the first event the file no longer covers), distinct from broken, and
`anchor` signs nothing over that gap unless the operator accepts it (`opsos audit anchor --accept-gap`). Events
after the newest mark were simply never anchored yet (no scheduler ran, as with `opsos chat` alone): nothing is
wrong with those. Whoever can rewrite the database and the file together can remove both; the anchor lines the
digests posted into the chat history are the copy they cannot reach.
"""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import structlog
from psycopg import Connection
from pydantic import BaseModel, Field, ValidationError

from orchestrator import audit
from orchestrator.audit import ChainReport
from orchestrator.settings import Settings

log = structlog.get_logger(__name__)

KEY_BYTES = 32
HASH_OF = "SELECT hash FROM audit_events WHERE id = %s"
HASHES_OF = "SELECT id, hash FROM audit_events WHERE id = ANY(%s)"
FIRST_AFTER = "SELECT id, at FROM audit_events WHERE id > %s ORDER BY id LIMIT 1"
NEWEST_MARK = "SELECT max(event_id) AS event_id FROM audit_anchor_marks"
MARK = "INSERT INTO audit_anchor_marks (event_id, at) VALUES (%s, %s) ON CONFLICT (event_id) DO NOTHING"


class Anchor(BaseModel):
    event_id: int
    hash: str
    at: datetime
    sig: str


class Refusal(StrEnum):
    UNREADABLE = "unreadable"
    FORGED = "forged"


class RefusedLine(BaseModel):
    """A line of the anchor file that is not an anchor signed with this key (forged, or the key changed)."""

    line: int
    reason: Refusal


class AnchorReport(ChainReport):
    """The chain checked against its anchors. `ok` is False when the chain breaks after the anchor or an anchored
    event was rewritten or removed (`rewritten_up_to`); refused anchor lines are reported, not trusted."""

    # The newest valid anchor the check started from; None when there is none (the check ran from the first event).
    anchor: Anchor | None = None
    rewritten_up_to: int | None = None
    refused: list[RefusedLine] = Field(default_factory=list)
    full: bool = False
    # How many anchors were compared with their events (one when incremental, every valid one when full).
    anchors_checked: int = 0
    # The first event no anchor covers although it is older than the anchors' schedule allows, and when it happened:
    # its anchors were deleted or rolled back (or the anchor job stopped). The links may verify; nothing vouches.
    unanchored_from: int | None = None
    unanchored_since: datetime | None = None

    @property
    def trusted(self) -> bool:
        return self.ok and not self.refused and self.unanchored_from is None


class Anchoring(BaseModel):
    """What `anchor` did: the check it ran first, and the newest anchor after it (`written` when it made one)."""

    report: AnchorReport
    anchor: Anchor | None
    written: bool


@dataclass(frozen=True)
class AnchorBook:
    """Where the anchors are kept and the key they are signed with."""

    path: Path
    key: bytes = field(repr=False)


def book(settings: Settings) -> AnchorBook:
    """The anchor file and key of these settings: OPSOS_AUDIT_KEY, else the key file (made on first use)."""
    if settings.audit_key is not None:
        key = settings.audit_key.get_secret_value().encode()
    else:
        key = load_key(settings.audit_key_file)
    return AnchorBook(path=settings.audit_anchor_file, key=key)


def load_key(path: Path) -> bytes:
    """The key in `path`, made there (random, mode 0600) when there is none yet. Raises ValueError if unreadable."""
    if not path.exists():
        _make_key(path)
    elif path.stat().st_mode & 0o077:
        log.warning("audit.key_readable_by_others", path=str(path), mode=oct(path.stat().st_mode & 0o777))
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError as error:
        raise ValueError(f"{path} does not hold an audit key (hex digits expected)") from error
    if len(key) < KEY_BYTES // 2:
        raise ValueError(f"{path} holds a key of {len(key)} bytes; at least {KEY_BYTES // 2} are needed")
    return key


def _make_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    spare = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(KEY_BYTES) + "\n")
            out.flush()
            os.fsync(out.fileno())
        # A hard link never replaces: of two processes making the key at once, the first one's stays and both read it.
        try:
            os.link(spare, path)
            log.info("audit.key_created", path=str(path))
        except FileExistsError:
            pass
    finally:
        spare.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- signing (pure) ---------------------------------------------------------------------------------

def _signed_text(event_id: int, head_hash: str, at: datetime) -> bytes:
    return json.dumps({"event_id": event_id, "hash": head_hash,
                       "at": at.astimezone(UTC).isoformat(timespec="microseconds")},
                      sort_keys=True, separators=(",", ":")).encode()


def sign(key: bytes, *, event_id: int, head_hash: str, at: datetime) -> Anchor:
    sig = hmac.new(key, _signed_text(event_id, head_hash, at), hashlib.sha256).hexdigest()
    return Anchor(event_id=event_id, hash=head_hash, at=at.astimezone(UTC), sig=sig)


def signed(key: bytes, anchor: Anchor) -> bool:
    expected = hmac.new(key, _signed_text(anchor.event_id, anchor.hash, anchor.at), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, anchor.sig)


def parse(key: bytes, lines: list[str]) -> tuple[list[Anchor], list[RefusedLine]]:
    """The anchors of the file's lines whose signature holds, and every other non-blank line (pure)."""
    found: list[Anchor] = []
    refused: list[RefusedLine] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            anchor = Anchor.model_validate_json(line)
        except ValidationError:
            refused.append(RefusedLine(line=number, reason=Refusal.UNREADABLE))
            continue
        if signed(key, anchor):
            found.append(anchor)
        else:
            refused.append(RefusedLine(line=number, reason=Refusal.FORGED))
    return found, refused


# -- the anchor file (I/O) --------------------------------------------------------------------------

def read(anchors: AnchorBook) -> tuple[list[Anchor], list[RefusedLine]]:
    try:
        text = anchors.path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    return parse(anchors.key, text.split("\n"))


def write(anchors: AnchorBook, anchor: Anchor) -> None:
    """Append `anchor` as one line and fsync it (and the folder, when the file is new)."""
    anchors.path.parent.mkdir(parents=True, exist_ok=True)
    new = not anchors.path.exists()
    fd = os.open(anchors.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # Two slots (the anchor job and the digest) may append at once from two workers: the lock makes the
        # torn-line check and the append one step, so a line is never written onto the end of another.
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        # A crash mid-append leaves a line without its newline: start afresh so that torn line stays one refused line.
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        os.write(fd, (b"\n" if torn else b"") + anchor.model_dump_json().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        _fsync_dir(anchors.path.parent)


# -- checking the chain against its anchors (I/O) ---------------------------------------------------

def verify(conn: Connection, anchors: AnchorBook, *, full: bool = False) -> AnchorReport:
    """The chain checked against the anchor file: every signature, then the newest anchor's event and the events
    after it (or, `full`, every event from the first and every anchor), and whether the file lost anchors the
    database says were written. Reads only; raises nothing on tampering."""
    report = _verify_links(conn, anchors, full=full)
    covered = report.anchor.event_id if report.anchor else 0
    marked = conn.execute(NEWEST_MARK).fetchone()["event_id"]
    if marked is not None and marked > covered:
        row = conn.execute(FIRST_AFTER, (covered,)).fetchone()
        first = row["id"] if row else covered + 1
        return report.model_copy(update={"unanchored_from": first, "unanchored_since": row["at"] if row else None})
    return report


def _verify_links(conn: Connection, anchors: AnchorBook, *, full: bool) -> AnchorReport:
    found, refused = read(anchors)
    newest = max(found, key=lambda a: a.event_id, default=None)
    if full:
        chain = audit.verify(conn)
        stored = {r["id"]: r["hash"] for r in conn.execute(HASHES_OF, ([a.event_id for a in found],))}
        mismatched = sorted(a.event_id for a in found if stored.get(a.event_id) != a.hash)
        rewritten = mismatched[0] if mismatched else None
        return AnchorReport(**{**chain.model_dump(), "ok": chain.ok and rewritten is None}, anchor=newest,
                            rewritten_up_to=rewritten, refused=refused, full=True, anchors_checked=len(found))
    if newest is None:
        return AnchorReport(**audit.verify(conn).model_dump(), refused=refused)
    row = conn.execute(HASH_OF, (newest.event_id,)).fetchone()
    if row is None or row["hash"] != newest.hash:
        return AnchorReport(ok=False, checked=0, anchor=newest, rewritten_up_to=newest.event_id, refused=refused,
                            anchors_checked=1)
    chain = audit.verify(conn, after=newest.event_id, after_hash=newest.hash)
    return AnchorReport(**chain.model_dump(), anchor=newest, refused=refused, anchors_checked=1)


def anchor(conn: Connection, anchors: AnchorBook, *, now: datetime, accept_gap: bool = False) -> Anchoring:
    """Re-hash the events after the newest anchor and sign the head they end at.

    Writes nothing when the check fails (a rewritten chain must not be vouched for), when the file lost anchors
    the database marks (signing over them would hide that they went) unless `accept_gap`, or when the head has
    not moved. The head signed is the last event the check read, so an event committed while
    it read is left for the next anchor rather than signed unchecked. Event ids follow commit order while appends
    are serialised by the chain lock (`audit.LOCK_CHAIN`); nothing after the head can commit below it.
    """
    report = verify(conn, anchors)
    newest = report.anchor
    if report.unanchored_from is not None and not accept_gap:
        return Anchoring(report=report, anchor=None, written=False)
    if not report.ok or report.head_id is None or (newest is not None and report.head_id == newest.event_id):
        return Anchoring(report=report, anchor=newest if report.ok else None, written=False)
    assert report.head_hash is not None
    made = sign(anchors.key, event_id=report.head_id, head_hash=report.head_hash, at=now)
    write(anchors, made)
    # After the file, so a mark never names an anchor the file did not get; with the caller's transaction.
    conn.execute(MARK, (made.event_id, now))
    log.info("audit.anchored", event_id=made.event_id, checked=report.checked)
    return Anchoring(report=report, anchor=made, written=True)
