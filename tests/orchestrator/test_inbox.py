"""The mailbox poller against a real Dovecot: customers' emails remembered once, replies tied to their runs, a
poller killed mid-mailbox, unreadable messages passed, a renumbered folder."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import pytest
from pydantic import SecretStr

from orchestrator import anchors, scheduler, views
from orchestrator.inbox import poll as inbox
from orchestrator.inbox.records import Status
from tests.orchestrator.helpers import OPERATOR, approve_and_finish, count, operations, seed

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mailbox_services(services, dovecot):
    """The services reading `dovecot`'s INBOX, the sandbox CRM seeded, and the folder's cursor started (a first
    poll starts at the end of the folder, so every message the test appends after this is new)."""
    services.settings = services.settings.model_copy(update={
        "imap_host": dovecot.host, "imap_port": dovecot.port, "imap_user": dovecot.user,
        "imap_password": SecretStr(dovecot.password), "imap_ssl": False})
    seed(services, declining=None)
    polled = poll(services)
    assert polled.started and polled.read == 0
    return services


def poll(services, folder: str | None = None) -> inbox.Polled:
    settings = services.settings if folder is None else services.settings.model_copy(update={"imap_folder": folder})
    mailbox = inbox.mailbox_of(settings)
    assert mailbox is not None
    return inbox.poll(services, mailbox)


def email(*, sender: str = "Ana Souza <ana@example.com>", subject: str = "About my plan",
          body: str = "Could I move to the annual plan next month?", message_id: str = "<a1@example.com>",
          **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "ops@example.com"
    message["Subject"] = subject
    message["Date"] = formatdate(1733220000)
    message["Message-ID"] = message_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


def rows(db, where: str = "true") -> list[dict]:
    with db.connection() as conn:
        return conn.execute(f"SELECT * FROM inbound_emails WHERE {where} ORDER BY id").fetchall()


def memories(db) -> list[dict]:
    with db.connection() as conn:
        return conn.execute("SELECT * FROM memories WHERE kind = 'customer_interaction' ORDER BY id").fetchall()


def links(db, node: tuple[str, object]) -> set[tuple[str, str, str, str, str]]:
    with db.connection() as conn:
        found = conn.execute("SELECT * FROM memory_links WHERE (from_type = %s AND from_id = %s) "
                             "OR (to_type = %s AND to_id = %s)", (*map(str, node), *map(str, node))).fetchall()
    return {(r["from_type"], r["from_id"], r["relation"], r["to_type"], r["to_id"]) for r in found}


def test_a_new_email_from_a_known_contact_becomes_one_memory_about_them(mailbox_services, dovecot, db):
    dovecot.append(email())
    assert poll(mailbox_services).statuses == {"remembered": 1}
    assert poll(mailbox_services).read == 0
    [memory] = memories(db)
    assert memory["subject"] == "Ana Souza"
    assert "Could I move to the annual plan next month?" in memory["text"]
    assert memory["provenance"]["source"] == "email:INBOX"
    [row] = rows(db)
    assert (row["status"], row["contact_id"], row["memory_id"]) == ("remembered", "c-ana", memory["id"])
    assert ("memory", str(memory["id"]), "about", "contact", "c-ana") in links(db, ("memory", memory["id"]))


def test_an_email_from_a_stranger_is_counted_but_not_remembered(mailbox_services, dovecot, db):
    dovecot.append(email(sender="Zed <zed@elsewhere.example>", message_id="<z@x>"))
    assert poll(mailbox_services).statuses == {"unknown_sender": 1}
    assert memories(db) == []
    assert [r["sender"] for r in rows(db)] == ["zed@elsewhere.example"]
    assert count(db, "outbox") == 0


def test_attachments_are_named_in_the_memory_never_stored(mailbox_services, dovecot, db):
    message = EmailMessage()
    message["From"] = "Ben Okafor <ben@example.com>"
    message["Subject"] = "My receipt"
    message["Message-ID"] = "<ben1@example.com>"
    message.set_content("Here is the receipt you asked for.")
    secret = b"%PDF-1.4 card 4242424242424242 " + b"x" * 3000
    message.add_attachment(secret, maintype="application", subtype="pdf", filename="receipt.pdf")
    dovecot.append(message.as_bytes())
    assert poll(mailbox_services).statuses == {"remembered": 1}
    [memory] = memories(db)
    assert "receipt.pdf (3 KB)" in memory["text"]
    assert "4242" not in memory["text"]
    assert rows(db)[0]["attachments"] == [{"filename": "receipt.pdf", "content_type": "application/pdf",
                                           "size": len(secret)}]


def test_a_reply_to_an_email_opsos_sent_is_tied_to_its_run_and_action_and_the_operator_is_told(
        mailbox_services, dovecot, db, work):
    """The win-back campaign emails Ana; her reply names its Message-ID (derived from the send's key) in
    In-Reply-To. The reply is linked to that action and run, remembered about Ana, told in chat, shown by
    "why did Ana reply?" and on the run's page."""
    ops = approve_and_finish(mailbox_services, work, operations(mailbox_services))
    with db.connection() as conn:
        sent = conn.execute("SELECT key, result FROM connector_actions WHERE connector = 'email' "
                            "AND request->>'to' = 'ana@example.com'").fetchone()
    ours = sent["result"]["message_id"]
    dovecot.append(email(subject="Re: We miss you", message_id="<r1@example.com>", In_Reply_To=ours,
                         References=ours, body="Yes! I'd love to come back at that price.\n\n"
                                               "On Tue, opsos wrote:\n> We miss you, Ana"))
    assert poll(mailbox_services).statuses == {"reply": 1}

    [reply] = rows(db)
    assert (reply["action_key"], reply["run_id"], reply["contact_id"]) == (sent["key"], 1, "c-ana")
    assert reply["preview"] == "Yes! I'd love to come back at that price."
    found = links(db, ("inbound_email", reply["id"]))
    assert ("inbound_email", str(reply["id"]), "replies_to", "action", sent["key"]) in found
    assert ("inbound_email", str(reply["id"]), "part_of", "run", "1") in found
    [memory] = memories(db)
    assert memory["provenance"]["run_id"] == 1 and "replied to the win-back campaign" in memory["text"]

    with db.connection() as conn:
        told = conn.execute("SELECT * FROM outbox WHERE run_id = 1 AND message->>'title' LIKE 'Ana%'").fetchall()
    assert [t["message"]["title"] for t in told] == [
        "Ana Souza replied to the win-back campaign: Yes! I'd love to come back at that price."]
    assert told[0]["conversation"] == "console:test"

    answer = ops.handle_text(OPERATOR, "why did Ana reply?").plain_text()
    assert "Why Ana Souza replied" in answer
    assert "Reply: from Ana Souza <ana@example.com>" in answer
    assert "email.send to ana@example.com" in answer
    assert "#1 winback" in answer
    assert "grow MRR" in answer


def test_a_reply_shows_on_the_run_page(mailbox_services, dovecot, db, work):
    approve_and_finish(mailbox_services, work, operations(mailbox_services))
    with db.connection() as conn:
        ours = conn.execute("SELECT result->>'message_id' AS mid FROM connector_actions WHERE connector = 'email' "
                            "AND request->>'to' = 'ben@example.com'").fetchone()["mid"]
    dovecot.append(email(sender="Ben Okafor <ben@example.com>", subject="Re: offer", message_id="<b2@x>",
                         In_Reply_To=ours, body="Not now, thanks."))
    poll(mailbox_services)
    with db.connection() as conn:
        page = views.overview.run_page(conn, 1, anchors=anchors.book(mailbox_services.settings))
    assert [(r.sender, r.preview) for r in page.replies] == [("ben@example.com", "Not now, thanks.")]


def test_unreadable_messages_are_recorded_and_passed_and_the_next_one_is_read(mailbox_services, dovecot, db):
    mailbox_services.settings = mailbox_services.settings.model_copy(update={"imap_max_message_bytes": 20_000})
    dovecot.append(b"Subject: no sender\r\nMessage-ID: <bad1@x>\r\n\r\nwho am I\r\n")
    dovecot.append(b"From: ana@example.com\r\nMessage-ID: <bad2@x>\r\nContent-Type: text/plain\r\n\r\n"
                   b"Ol\xe1, n\xe3o consigo pagar\r\n")
    dovecot.append(email(message_id="<huge@x>", body="attached video\n" + "x" * 60_000))
    dovecot.append(email(message_id="<good@x>", body="Still there?"))
    assert poll(mailbox_services).statuses == {"malformed": 1, "undecodable": 1, "too_large": 1, "remembered": 1}
    assert [(r["status"], r["message_id"]) for r in rows(db)] == [
        ("malformed", "<bad1@x>"), ("undecodable", "<bad2@x>"), ("too_large", "<huge@x>"),
        ("remembered", "<good@x>")]
    assert "over the 20000-byte limit" in rows(db)[2]["detail"]
    assert [m["text"].splitlines()[1] for m in memories(db)] == ["Still there?"]


def test_a_message_whose_reading_raises_is_recorded_as_failed_and_the_poller_goes_on(
        mailbox_services, dovecot, db, monkeypatch):
    calls = []

    def by_email(address):
        calls.append(address)
        if len(calls) == 1:
            raise ValueError("the CRM answered nonsense")
        return original(address)

    original = mailbox_services.crm.by_email
    monkeypatch.setattr(mailbox_services.crm, "by_email", by_email)
    dovecot.append(email(message_id="<first@x>"))
    dovecot.append(email(message_id="<second@x>", body="Second try"))
    assert poll(mailbox_services).statuses == {"failed": 1, "remembered": 1}
    assert [(r["status"], r["message_id"]) for r in rows(db)] == [("failed", "<first@x>"),
                                                                  ("remembered", "<second@x>")]
    assert "the CRM answered nonsense" in rows(db)[0]["detail"]


def test_the_same_message_twice_in_the_folder_is_remembered_once(mailbox_services, dovecot, db):
    dovecot.append(email(message_id="<dup@x>"))
    dovecot.append(email(message_id="<dup@x>"))
    assert poll(mailbox_services).statuses == {"remembered": 1, "duplicate": 1}
    assert len(memories(db)) == 1


def test_a_renumbered_folder_is_read_again_without_remembering_twice(mailbox_services, dovecot, db):
    """A new UIDVALIDITY makes the stored UID meaningless: opsos reads the folder again since its last poll and
    knows the messages it read before by their Message-ID."""
    dovecot.create_folder("Support")
    assert poll(mailbox_services, "Support").started
    dovecot.append(email(message_id="<s1@x>"), folder="Support")
    assert poll(mailbox_services, "Support").statuses == {"remembered": 1}
    before = dovecot.uidvalidity("Support")

    dovecot.delete_folder("Support")
    dovecot.create_folder("Support")
    dovecot.append(email(message_id="<s1@x>"), folder="Support")
    dovecot.append(email(message_id="<s2@x>", body="And another thing"), folder="Support")
    assert dovecot.uidvalidity("Support") != before

    polled = poll(mailbox_services, "Support")
    assert polled.renumbered
    assert polled.statuses == {"duplicate": 1, "remembered": 1}
    assert len(memories(db)) == 2
    assert poll(mailbox_services, "Support").read == 0
    with db.connection() as conn:
        cursor = conn.execute("SELECT * FROM mailbox_cursors WHERE folder = 'Support'").fetchone()
    assert cursor["uidvalidity"] == dovecot.uidvalidity("Support")


# The poller in a process of its own, which hangs inside the transaction of the third message it takes (after
# looking its sender up in the CRM), so the test can kill it there with SIGKILL.
CHILD = """
import sys, time
from pathlib import Path
from pydantic import SecretStr
from orchestrator.inbox import poll as inbox
from orchestrator.services import build_services
from orchestrator.settings import Settings

database_url, redis_url, data_dir, port, user, password, marker = sys.argv[1:]
settings = Settings(database_url=database_url, redis_url=redis_url, data_dir=data_dir, imap_host="127.0.0.1",
                    imap_port=int(port), imap_user=user, imap_password=SecretStr(password), imap_ssl=False,
                    _env_file=None)
services = build_services(settings)
original, calls = services.crm.by_email, []

def by_email(address):
    calls.append(address)
    if len(calls) == 3:
        Path(marker).write_text("hanging")
        time.sleep(600)
    return original(address)

services.crm.by_email = by_email
inbox.poll(services, inbox.mailbox_of(settings))
"""


def test_a_poller_killed_in_the_middle_of_the_mailbox_neither_misses_nor_repeats(
        mailbox_services, dovecot, db, database_url, redis_url, tmp_path):
    for n in range(1, 6):
        dovecot.append(email(message_id=f"<k{n}@x>", body=f"Message number {n}"))
    marker = tmp_path / "hanging"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, database_url, redis_url, str(tmp_path / "child"), str(dovecot.port),
         dovecot.user, dovecot.password, str(marker)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, child.stdout.read().decode() if child.stdout else ""
            assert time.monotonic() < deadline, "the child poller never reached its third message"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert [r["message_id"] for r in rows(db)] == ["<k1@x>", "<k2@x>"]

    assert poll(mailbox_services).statuses == {"remembered": 3}
    assert [r["message_id"] for r in rows(db)] == [f"<k{n}@x>" for n in range(1, 6)]
    assert sorted(m["text"].splitlines()[1] for m in memories(db)) == [f"Message number {n}" for n in range(1, 6)]
    with db.connection() as conn:
        assert conn.execute("SELECT last_uid FROM mailbox_cursors").fetchone()["last_uid"] == 5


def test_the_scheduler_polls_the_mailbox_when_one_is_set(mailbox_services, dovecot, db):
    assert "mailbox" not in scheduler.schedules(mailbox_services.settings.model_copy(update={"imap_host": None}))
    dovecot.append(email())
    ran = scheduler.run_slot(mailbox_services, scheduler.schedules(mailbox_services.settings)["mailbox"])
    assert ran is not None and ran.result["statuses"] == {Status.REMEMBERED.value: 1}


def test_a_mailbox_that_refuses_the_login_is_told_once_a_day_and_nothing_is_lost(mailbox_services, dovecot, db):
    dovecot.append(email())
    good = mailbox_services.settings
    mailbox_services.settings = good.model_copy(update={"imap_password": SecretStr("changed")})
    job = scheduler.schedules(mailbox_services.settings)["mailbox"]
    now = mailbox_services.now()
    first = scheduler.run_slot(mailbox_services, job, now=now)
    again = scheduler.run_slot(mailbox_services, job, now=now + job.every)
    assert first is not None and "unavailable" in first.result
    assert again is not None and "unavailable" in again.result
    assert count(db, "outbox", "message->>'title' LIKE 'I cannot read the mailbox%'") == 1
    mailbox_services.settings = good
    assert poll(mailbox_services).statuses == {"remembered": 1}
