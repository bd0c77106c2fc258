"""Dashboard sign-in: a one-time link asked for in chat, exchanged once for a session with its CSRF token.

Only hashes of the link token and the session id are stored, so a copy of the database signs no one in.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import structlog
from psycopg import Connection
from pydantic import BaseModel

from orchestrator import audit, words
from orchestrator.messages import Message
from orchestrator.services import Services

log = structlog.get_logger(__name__)

INSERT_LINK = """
INSERT INTO dashboard_signins (token_hash, identity, created_at, expires_at) VALUES (%s, %s, %s, %s)
"""
# One statement decides "unused and unexpired" and marks it used: two clicks on the link cannot both win.
REDEEM = """
UPDATE dashboard_signins SET used_at = %(now)s
WHERE token_hash = %(hash)s AND used_at IS NULL AND expires_at > %(now)s RETURNING identity
"""
# A refused try of a link that was really issued is recorded once: a replayed or late link is worth an audit
# event, but a stream of tries must not become a stream of writes to the audit chain.
FIRST_REFUSAL = """
UPDATE dashboard_signins SET refused_at = %(now)s
WHERE token_hash = %(hash)s AND refused_at IS NULL RETURNING identity
"""
INSERT_SESSION = """
INSERT INTO dashboard_sessions (id_hash, identity, csrf, created_at, expires_at) VALUES (%s, %s, %s, %s, %s)
"""
SESSION = "SELECT identity, csrf, expires_at FROM dashboard_sessions WHERE id_hash = %s AND expires_at > %s"
END = "DELETE FROM dashboard_sessions WHERE id_hash = %s"


class Session(BaseModel):
    identity: str
    csrf: str
    expires_at: datetime


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(conn: Connection, *, identity: str, now: datetime, ttl: timedelta) -> str:
    """A new one-time sign-in token for `identity` (the caller checked it is an operator)."""
    token = secrets.token_urlsafe(32)
    conn.execute(INSERT_LINK, (_hash(token), identity, now, now + ttl))
    audit.append(conn, at=now, actor=identity, kind="dashboard.link_issued", payload={"expires_at": now + ttl})
    return token


def redeem(conn: Connection, token: str, *, now: datetime, ttl: timedelta) -> tuple[str, Session] | None:
    """Exchange an unused, unexpired token for (session id, session); None for a used, expired or unknown one."""
    row = conn.execute(REDEEM, {"hash": _hash(token), "now": now}).fetchone()
    if row is None:
        # An unknown token writes nothing: anyone on the internet can POST one, and each audit event is
        # permanent and taken under the chain's lock (review defect 4). It is logged, without the token.
        issued = conn.execute(FIRST_REFUSAL, {"hash": _hash(token), "now": now}).fetchone()
        if issued is not None:
            audit.append(conn, at=now, actor="dashboard", kind="dashboard.signin_refused",
                         payload={"token": _hash(token)[:12], "identity": issued["identity"]})
        log.info("dashboard.signin_refused", known=issued is not None)
        return None
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    session = Session(identity=row["identity"], csrf=csrf, expires_at=now + ttl)
    conn.execute(INSERT_SESSION, (_hash(session_id), session.identity, csrf, now, session.expires_at))
    audit.append(conn, at=now, actor=session.identity, kind="dashboard.signed_in",
                 payload={"expires_at": session.expires_at})
    return session_id, session


def session(conn: Connection, session_id: str, *, now: datetime) -> Session | None:
    row = conn.execute(SESSION, (_hash(session_id), now)).fetchone()
    return Session.model_validate(row) if row else None


def end(conn: Connection, session_id: str) -> None:
    conn.execute(END, (_hash(session_id),))


def link_message(services: Services, identity: str) -> Message:
    """`/ops dashboard`: a one-time sign-in link for the operator `identity` (policy checked by the caller)."""
    settings = services.settings
    now = services.now()
    ttl = timedelta(minutes=settings.signin_ttl_minutes)
    with services.stores.pool.connection() as conn, conn.transaction():
        token = issue(conn, identity=identity, now=now, ttl=ttl)
    return words.dashboard_link(f"{settings.dashboard_url.rstrip('/')}/login/{token}", now + ttl)
