"""The email connector: sends a message once per idempotency key, over SMTP or into a folder of .eml files."""
from __future__ import annotations

import contextlib
import hashlib
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Protocol

import psycopg
import structlog
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, EmailStr

from connectors.errors import ActionDeclined, ConnectorUnavailable
from connectors.idempotency import ActionClaims, Claim, lookup
from connectors.resilience import CircuitBreaker, RetryPolicy, with_retries

log = structlog.get_logger(__name__)


class OutgoingEmail(BaseModel):
    to: EmailStr
    subject: str
    body: str
    sender: str


class SentEmail(BaseModel):
    key: str
    message_id: str
    to: str
    duplicate: bool
    location: str


class EmailBackend(Protocol):
    def deliver(self, *, message: EmailMessage, key: str) -> str:
        """Deliver the message; return where it went. A repeat with the same key must be harmless."""
        ...


def message_id_for(key: str) -> str:
    # Stable across retries: a receiving server or client that sees the same Message-ID twice
    # treats it as one message, which covers an SMTP attempt whose outcome was lost with its worker.
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@opsos>"


class FileEmailBackend:
    """The embedded default: each message is an .eml file the operator can open with any mail client."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def deliver(self, *, message: EmailMessage, key: str) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(key.encode()).hexdigest()[:24] + ".eml"
        target = self.folder / name
        # Write then rename: a crash leaves a temp file, never half a message under the final name.
        temp = self.folder / f".{name}.{os.getpid()}.tmp"
        temp.write_bytes(message.as_bytes())
        os.replace(temp, target)
        return str(target)


class SmtpEmailBackend:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.starttls, self.timeout = starttls, timeout

    def deliver(self, *, message: EmailMessage, key: str) -> str:
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            try:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
            finally:
                # Once DATA is accepted the message is the server's: whatever QUIT answers (a 421, a dropped
                # connection) must not turn a sent email into a failure that a retry would send again.
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    smtp.quit()
                smtp.close()
        # SMTPResponseException is an OSError too: it must be told apart first, since a 5xx answer is
        # final (the email connector does not retry declines) while 4xx and network errors are worth a retry.
        except smtplib.SMTPResponseException as error:
            said = f"SMTP {error.smtp_code}: {error.smtp_error!r}"
            if 400 <= error.smtp_code < 500:
                raise ConnectorUnavailable(said) from error
            raise ActionDeclined(said, reason=f"smtp_{error.smtp_code}") from error
        except OSError as error:
            raise ConnectorUnavailable(f"SMTP {self.host}:{self.port}: {error}") from error
        return f"smtp://{self.host}:{self.port}"


class EmailConnector:
    """Sends email once per key: the key is claimed in PostgreSQL before delivery and closed after.

    The claim (with its journal event) commits before the SMTP conversation, so while it lasts no other worker
    sends under the key, even one that took the run over from a worker whose run lock was lost. One window
    remains, as with any SMTP client: a crash after the server accepted DATA and before the key is closed sends
    the message again on the re-run (at least once, not exactly once). The copy carries the same Message-ID
    (derived from the key), so a receiving system that dedupes on it shows one.
    """

    name = "email"

    def __init__(
        self,
        pool: ConnectionPool,
        backend: EmailBackend,
        *,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        claims: ActionClaims | None = None,
    ) -> None:
        self.pool = pool
        self.backend = backend
        self.claims = claims or ActionClaims()
        self.retry = retry or RetryPolicy(attempts=3, base_seconds=0.5, retry_declines=False)
        self.breaker = breaker or CircuitBreaker("email")

    def execute(self, *, action: OutgoingEmail, key: str) -> SentEmail:
        """Send `action` unless `key` was already sent; raises ConnectorUnavailable when retries are spent,
        ActionInProgress when another attempt is sending under `key` right now."""
        with self.pool.connection() as conn, conn.transaction():
            claim = self.claims.claim(
                conn, key=key, connector=self.name, action="send", request=action.model_dump(mode="json")
            )
        done = claim.done
        if done is not None and done.state == "done" and done.result is not None:
            return SentEmail.model_validate({**done.result, "duplicate": True})
        message = EmailMessage()
        message["From"] = action.sender
        message["To"] = action.to
        message["Subject"] = action.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = message_id_for(key)
        message["X-Opsos-Key"] = key
        message.set_content(action.body)
        try:
            location = with_retries(
                lambda _attempt: self.breaker.call(lambda: self.backend.deliver(message=message, key=key)),
                self.retry,
            )
        except Exception as error:
            self._give_back(claim, error)
            raise
        sent = SentEmail(key=key, message_id=message["Message-ID"], to=action.to, duplicate=False, location=location)
        with self.pool.connection() as conn, conn.transaction():
            self.claims.finish(conn, key=key, result=sent.model_dump(exclude={"duplicate"}))
        log.info("email.sent", key=key, to=action.to, location=location)
        return sent

    def _give_back(self, claim: Claim, error: Exception) -> None:
        """Free the key for the next attempt at once: this one failed (a refusal, the server unreachable)."""
        try:
            with self.pool.connection() as conn, conn.transaction():
                self.claims.release(conn, claim, error=error)
        except psycopg.Error as lost:
            # The database went too: the claim then simply runs out, and the next attempt waits for that.
            log.warning("email.claim_not_released", key=claim.record.key, error=str(lost))

    def compensate(self, *, key: str) -> str:
        """A sent email cannot be recalled; compensation is recorded so the report says so plainly."""
        with self.pool.connection() as conn:
            record = lookup(conn, key)
        if record is None or record.state != "done":
            return "nothing was sent"
        return "already delivered; email cannot be recalled"
