"""A local SMTP server (aiosmtpd) that records each accepted message and can hold or refuse deliveries."""

from __future__ import annotations

import asyncio
import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Literal, Self, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import BaseModel, ConfigDict

Stage = Literal["MAIL", "RCPT", "DATA"]


class ReceivedEmail(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    message_id: str | None
    raw: bytes
    login: str | None = None
    # False when a scripted drop cut the connection before the 250: kept (delivered), but its sender never knew.
    answered: bool = True


class SmtpStandIn:
    """SMTP on 127.0.0.1 at `.host`/`.port`. With `credentials`, AUTH (PLAIN/LOGIN, no TLS) is required.

    `hold_for(rcpt)` makes the next message to `rcpt` wait at the end of DATA, neither accepted nor refused,
    until `release()`; `held` is set while one waits. If its client disconnects meanwhile (a killed worker),
    the message lands in `dropped`, never in `messages`, and the `dropped_event` is set.

    `slow_next` answers the end of DATA late; `drop_next` accepts the message (it is in `messages`: delivered)
    and then cuts the connection before the 250, so the client cannot tell it was accepted.
    """

    def __init__(self, *, credentials: tuple[str, str] | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.credentials = credentials
        self.messages: list[ReceivedEmail] = []
        self.dropped: list[ReceivedEmail] = []
        self.held = threading.Event()
        self.dropped_event = threading.Event()
        self._lock = threading.Lock()
        self._holds: dict[str, int] = {}
        self._releases: list[asyncio.Event] = []
        self._failures: list[tuple[Stage, int, str]] = []
        self._slow: list[float] = []
        self._drops = 0
        self._controller: Controller | None = None
        # What QUIT answers; a server may say anything once the message is accepted (e.g. `421 closing`).
        self.quit_reply: str | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> Self:
        self.port = _free_port()
        options: dict[str, Any] = {}
        if self.credentials:
            options = {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": False}
        self._controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            server_hostname="standin.local",
            ready_timeout=5,
            **options,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self.release()
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- helpers for tests ------------------------------------------------------------------------

    def to(self, recipient: str) -> list[ReceivedEmail]:
        return [m for m in self.messages if recipient.lower() in (r.lower() for r in m.rcpt_tos)]

    def hold_for(self, recipient: str, times: int = 1) -> None:
        """Hold the next `times` messages addressed to `recipient` at DATA until `release()` or disconnect."""
        with self._lock:
            self._holds[recipient.lower()] = self._holds.get(recipient.lower(), 0) + times

    def release(self) -> None:
        """Let every held message through (it is then accepted) and cancel holds not yet used."""
        with self._lock:
            self._holds.clear()
            waiting, self._releases = self._releases, []
        if self._controller is not None and self._controller.loop.is_running():
            for event in waiting:
                self._controller.loop.call_soon_threadsafe(event.set)

    def fail_next(
        self,
        times: int = 1,
        *,
        code: int = 421,
        stage: Stage = "DATA",
        text: str = "4.3.0 Service not available, try again later",
    ) -> None:
        """Answer the next `times` messages with `code` at `stage` (421 by default: transient, closing)."""
        with self._lock:
            self._failures.extend((stage, code, text) for _ in range(times))

    def slow_next(self, times: int = 1, *, seconds: float) -> None:
        """Answer the end of DATA of the next `times` messages only after `seconds` (then accept them)."""
        with self._lock:
            self._slow.extend(seconds for _ in range(times))

    def drop_next(self, times: int = 1) -> None:
        """Accept the next `times` messages, then close the connection instead of answering 250."""
        with self._lock:
            self._drops += times

    # -- server side (runs on the controller's loop) --------------------------------------------

    def _take_slow(self) -> float:
        with self._lock:
            return self._slow.pop(0) if self._slow else 0.0

    def _take_drop(self) -> bool:
        with self._lock:
            if self._drops > 0:
                self._drops -= 1
                return True
        return False

    def _failure(self, stage: Stage) -> str | None:
        with self._lock:
            if self._failures and self._failures[0][0] == stage:
                _, code, text = self._failures.pop(0)
                return f"{code} {text}"
        return None

    def _take_hold(self, rcpt_tos: list[str]) -> asyncio.Event | None:
        with self._lock:
            for rcpt in rcpt_tos:
                if self._holds.get(rcpt.lower(), 0) > 0:
                    self._holds[rcpt.lower()] -= 1
                    event = asyncio.Event()
                    self._releases.append(event)
                    return event
        return None

    def _authenticate(
        self, _server: SMTP, _session: Session, _envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        ok = (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)


class _Handler:
    def __init__(self, stand_in: SmtpStandIn) -> None:
        self.stand_in = stand_in

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self.stand_in._failure("MAIL")
        if refusal:
            return refusal
        envelope.mail_from, envelope.mail_options = address, list(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self.stand_in._failure("RCPT")
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str | object:
        from aiosmtpd.smtp import MISSING

        return self.stand_in.quit_reply or MISSING

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        refusal = self.stand_in._failure("DATA")
        if refusal:
            return refusal
        late = self.stand_in._take_slow()
        if late:
            await asyncio.sleep(late)
        raw = cast(bytes, envelope.original_content or envelope.content)
        message = cast(EmailMessage, message_from_bytes(raw, policy=policy.default))
        login = session.auth_data if isinstance(session.auth_data, str) else None
        received = ReceivedEmail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            message=message,
            message_id=message["Message-ID"],
            raw=raw,
            login=login,
        )
        release = self.stand_in._take_hold(received.rcpt_tos)
        if release is not None:
            self.stand_in.held.set()
            try:
                await release.wait()
            except asyncio.CancelledError:
                # aiosmtpd cancels the session when its client goes away: the message was never accepted.
                self.stand_in.dropped.append(received)
                self.stand_in.dropped_event.set()
                self.stand_in.held.clear()
                raise
            self.stand_in.held.clear()
        self.stand_in.messages.append(received)
        if self.stand_in._take_drop() and server.transport is not None:
            # Accepted and kept, but the client never hears so: it sees the connection close at DATA's end.
            received.answered = False
            server.transport.abort()
        return "250 OK"


def _free_port() -> int:
    # aiosmtpd's Controller needs a concrete port to probe its own readiness, so pick one the OS says is free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
