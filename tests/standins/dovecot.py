"""A real Dovecot IMAP server (Debian's dovecot-imapd) for the tests, started as a subprocess with its own config.

It listens on 127.0.0.1 on a free port, with one passwd-file user and a Maildir under a temp folder, plaintext
login allowed without TLS (loopback only), logs in a file, no system service touched. Messages go in by APPEND
through imapclient, the way another mail client (or a delivery agent) would put them there.
"""
from __future__ import annotations

import getpass
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from imapclient import IMAPClient

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = {uid}
last_valid_uid = 0
mail_location = maildir:{root}/home/%u/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
"""


def available() -> bool:
    return Path(DOVECOT).is_file() and os.access(DOVECOT, os.X_OK)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Dovecot:
    """`.host`, `.port`, `.user`, `.password`; `append(raw)` puts a message in a folder, `client()` logs in."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.user = "ops@example.com"
        self.password = "mailbox-test-password"
        # Outside pytest's private temp tree: as root, Dovecot's login and mail processes run as other users
        # that must reach the folder (kept short too: unix socket paths have a limit of about 100 bytes).
        self.root = Path(tempfile.mkdtemp(prefix="opsos-dovecot-"))
        self.root.chmod(0o755)
        self._process: subprocess.Popen[bytes] | None = None

    def _users(self) -> dict[str, object]:
        if os.getuid() != 0:
            me = getpass.getuser()
            return {"internal_user": me, "login_user": me, "uid": os.getuid(), "gid": os.getgid()}
        # Dovecot refuses to run its login processes as root; Debian's package made these two users for it.
        mail = pwd.getpwnam("dovecot")
        return {"internal_user": "dovecot", "login_user": "dovenull", "uid": mail.pw_uid, "gid": mail.pw_gid}

    def start(self) -> Self:
        users = self._users()
        for folder in ("run", "state", "home"):
            (self.root / folder).mkdir()
        if os.getuid() == 0:
            os.chown(self.root / "home", int(users["uid"]), int(users["gid"]))  # type: ignore[call-overload]
        (self.root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        config = self.root / "dovecot.conf"
        config.write_text(CONFIG.format(root=self.root, port=self.port, **users))
        self._process = subprocess.Popen([DOVECOT, "-F", "-c", str(config)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self._process.returncode}: {self.log()}")
            try:
                with self.client():
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dovecot did not answer on {self.port}: {self.log()}") from None
                time.sleep(0.05)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def client(self) -> IMAPClient:
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        return client

    def append(self, raw: bytes, folder: str = "INBOX") -> int:
        """Put one message in `folder`; returns its UID (from APPENDUID, RFC 4315)."""
        with self.client() as client:
            answer = client.append(folder, raw)
        return int(answer.split(b"APPENDUID ", 1)[1].split(b" ")[1].rstrip(b"]"))

    def create_folder(self, folder: str) -> None:
        with self.client() as client:
            client.create_folder(folder)

    def delete_folder(self, folder: str) -> None:
        with self.client() as client:
            client.delete_folder(folder)

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.client() as client:
            return int(client.select_folder(folder, readonly=True)[b"UIDVALIDITY"])

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
