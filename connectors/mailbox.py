"""The mailbox connector: reads the operator's folder over IMAP (imapclient), read-only, by UID.

Nothing here changes the mailbox: the folder is selected read-only and bodies are fetched with BODY.PEEK, so
a message opsos read is still unread in the operator's own mail client. Where opsos got to is the caller's to
keep (a UID and the folder's UIDVALIDITY); this module only answers "what is there after UID n".
"""
from __future__ import annotations

import ssl as ssl_module
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from pydantic import BaseModel

from connectors.errors import ConnectorUnavailable

log = structlog.get_logger(__name__)

SIZE = b"RFC822.SIZE"
BODY = b"BODY[]"
HEADER = b"BODY[HEADER]"


class FolderState(BaseModel):
    """A selected folder's identity: UIDs are only comparable while `uidvalidity` stays the same (RFC 3501)."""

    folder: str
    uidvalidity: int
    uidnext: int


class Fetched(BaseModel):
    """One message as the server holds it. `raw` is None for a message over the size limit: only its header
    was fetched, so a 40 MB attachment is never downloaded to learn who sent it."""

    uid: int
    size: int
    header: bytes
    raw: bytes | None


class MailboxSession:
    """One logged-in IMAP connection with the folder selected read-only; made by `ImapMailbox.session`."""

    def __init__(self, client: IMAPClient, state: FolderState, *, max_bytes: int) -> None:
        self._client = client
        self.state = state
        self.max_bytes = max_bytes

    def uids_after(self, last_uid: int, *, limit: int) -> list[int]:
        """The UIDs above `last_uid`, oldest first, at most `limit` of them."""
        if self.state.uidnext <= last_uid + 1:
            return []
        # "n:*" always matches the newest message, even when its UID is below n (RFC 3501 6.4.8): filtered out.
        found = self._call(lambda: self._client.search(["UID", f"{last_uid + 1}:*"]))
        return sorted(uid for uid in found if uid > last_uid)[:limit]

    def uids_since(self, day: date) -> list[int]:
        """The UIDs of the messages the server took in on or after `day` (their INTERNALDATE), oldest first."""
        return sorted(self._call(lambda: self._client.search(["SINCE", day])))

    def fetch(self, uids: list[int]) -> list[Fetched]:
        """The messages `uids` in UID order; a UID expunged meanwhile is simply absent."""
        if not uids:
            return []
        sizes = self._call(lambda: self._client.fetch(uids, [SIZE]))
        small = [uid for uid in uids if uid in sizes and sizes[uid][SIZE] <= self.max_bytes]
        large = [uid for uid in uids if uid in sizes and sizes[uid][SIZE] > self.max_bytes]
        bodies = self._call(lambda: self._client.fetch(small, ["BODY.PEEK[]"])) if small else {}
        headers = self._call(lambda: self._client.fetch(large, ["BODY.PEEK[HEADER]"])) if large else {}
        out = []
        for uid in uids:
            if uid in bodies:
                raw = bytes(bodies[uid][BODY])
                out.append(Fetched(uid=uid, size=sizes[uid][SIZE], header=raw.split(b"\r\n\r\n", 1)[0], raw=raw))
            elif uid in headers:
                out.append(Fetched(uid=uid, size=sizes[uid][SIZE], header=bytes(headers[uid][HEADER]), raw=None))
        return out

    def _call(self, do: Any) -> Any:
        try:
            return do()
        except (IMAPClientError, OSError) as error:
            raise ConnectorUnavailable(f"IMAP {self.state.folder}: {error}") from error


class ImapMailbox:
    """The operator's mailbox. Plain arguments only: the orchestrator builds it from its settings."""

    name = "mailbox"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str,
        password: str,
        folder: str = "INBOX",
        ssl: bool = True,
        timeout: float = 30.0,
        max_bytes: int = 10 * 1024 * 1024,
        ssl_context: ssl_module.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.folder, self.ssl, self.timeout, self.max_bytes = folder, ssl, timeout, max_bytes
        self.ssl_context = ssl_context

    @contextmanager
    def session(self) -> Iterator[MailboxSession]:
        """Log in and select the folder read-only; raises ConnectorUnavailable when the server cannot be reached,
        refuses the login or has no such folder (each worth telling the operator, none worth crashing over)."""
        where = f"IMAP {self.host}:{self.port}"
        try:
            client = IMAPClient(self.host, port=self.port, ssl=self.ssl, timeout=self.timeout,
                                ssl_context=self.ssl_context)
        except (IMAPClientError, OSError) as error:
            raise ConnectorUnavailable(f"{where}: {error}") from error
        try:
            try:
                client.login(self.user, self.password)
                selected = client.select_folder(self.folder, readonly=True)
                # RFC 3501 requires UIDNEXT in SELECT's answer; a server that leaves it out is asked for its UIDs.
                uidnext = int(selected.get(b"UIDNEXT", 0)) or max(client.search(["ALL"]) or [0]) + 1
            except (IMAPClientError, OSError) as error:
                raise ConnectorUnavailable(f"{where} ({self.user}, {self.folder}): {error}") from error
            state = FolderState(folder=self.folder, uidvalidity=int(selected[b"UIDVALIDITY"]), uidnext=uidnext)
            yield MailboxSession(client, state, max_bytes=self.max_bytes)
        finally:
            try:
                client.logout()
            except (IMAPClientError, OSError) as error:
                # The messages were read already; a connection dropped at LOGOUT loses nothing.
                log.info("mailbox.logout_failed", host=self.host, error=str(error))
