"""The mailbox connector: reading received emails (pure), and imapclient against a real Dovecot."""
from __future__ import annotations

from email.message import EmailMessage

import pytest

from connectors import ConnectorUnavailable, ImapMailbox, InboundEmail, Unreadable, new_text, read_email


def email(*, sender: str = "Ana Souza <ana@example.com>", subject: str = "Re: your offer", body: str = "Yes please",
          message_id: str = "<m1@example.com>", **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "ops@example.com"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


def test_a_plain_email_is_read_with_its_sender_subject_and_text():
    read = read_email(email(body="Yes please, sign me up again."))
    assert isinstance(read, InboundEmail)
    assert (read.sender, read.sender_name, read.subject) == ("ana@example.com", "Ana Souza", "Re: your offer")
    assert read.message_id == "<m1@example.com>"
    assert read.text.strip() == "Yes please, sign me up again."


def test_what_a_reply_answers_is_in_reply_to_first_then_references_newest_first():
    read = read_email(email(In_Reply_To="<b@opsos>", References="<a@x> <b@opsos>"))
    assert isinstance(read, InboundEmail)
    assert read.answers == ["<b@opsos>", "<a@x>"]


def test_attachments_are_noted_by_name_and_size_and_left_out_of_the_text():
    message = EmailMessage()
    message["From"] = "ana@example.com"
    message["Subject"] = "invoice"
    message.set_content("See attached.")
    message.add_attachment(b"%PDF" + b"x" * 2044, maintype="application", subtype="pdf", filename="invoice.pdf")
    read = read_email(message.as_bytes())
    assert isinstance(read, InboundEmail)
    assert [(a.filename, a.content_type, a.size) for a in read.attachments] == [("invoice.pdf", "application/pdf",
                                                                                  2048)]
    assert "PDF" not in read.text


def test_an_html_only_email_is_read_as_its_text():
    message = EmailMessage()
    message["From"] = "ana@example.com"
    message.set_content("<html><style>p {color: red}</style><p>Count me <b>in</b></p></html>", subtype="html")
    read = read_email(message.as_bytes())
    assert isinstance(read, InboundEmail)
    assert read.text == "Count me in"


@pytest.mark.parametrize(("raw", "reason"), [
    # Latin-1 bytes in a body that declares no charset: neither ASCII nor UTF-8, so it would be read wrong.
    (b"From: ana@example.com\r\nSubject: hi\r\nContent-Type: text/plain\r\n\r\nOl\xe1, obrigada\r\n", "undecodable"),
    (b"From: ana@example.com\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xff\xfe broken\r\n", "undecodable"),
    (b"From: ana@example.com\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\nqapla\r\n", "undecodable"),
    (b"From: \xe1na@example.com\r\n\r\nhello\r\n", "undecodable"),
    (b"Subject: nobody sent this\r\n\r\nhello\r\n", "malformed"),
    (b"\x00\x01\x02 not an email at all", "malformed"),
])
def test_a_message_that_cannot_be_read_faithfully_says_why(raw, reason):
    read = read_email(raw)
    assert isinstance(read, Unreadable)
    assert read.reason == reason


def test_a_body_in_its_declared_charset_is_read():
    raw = b"From: ana@example.com\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nOl\xe1, obrigada\r\n"
    read = read_email(raw)
    assert isinstance(read, InboundEmail)
    assert read.text.strip() == "Olá, obrigada"


@pytest.mark.parametrize(("text", "kept"), [
    ("Yes!\n\nOn Tue, 3 Dec 2024, opsos <ops@example.com> wrote:\n> Come back\n> 30% off", "Yes!"),
    ("Yes!\n> quoted\nThanks", "Yes!\nThanks"),
    ("Sure\n-----Original Message-----\nFrom: opsos", "Sure"),
    ("", ""),
])
def test_new_text_keeps_what_the_sender_wrote(text, kept):
    assert new_text(text) == kept


def mailbox(dovecot, **options) -> ImapMailbox:
    return ImapMailbox(host=dovecot.host, port=dovecot.port, user=dovecot.user, password=dovecot.password,
                       ssl=False, **options)


def test_messages_after_a_uid_are_fetched_in_order_and_left_unread(dovecot):
    first = dovecot.append(email(message_id="<1@x>"))
    second = dovecot.append(email(message_id="<2@x>"))
    with mailbox(dovecot).session() as session:
        assert session.uids_after(0, limit=10) == [first, second]
        assert session.uids_after(second, limit=10) == []
        fetched = session.fetch([first, second])
    assert [f.uid for f in fetched] == [first, second]
    assert b"Message-ID: <2@x>" in (fetched[1].raw or b"")
    with dovecot.client() as client:
        client.select_folder("INBOX", readonly=True)
        assert client.search(["UNSEEN"]) == [first, second]


def test_a_message_over_the_size_limit_is_not_downloaded_only_its_header(dovecot):
    uid = dovecot.append(email(body="x" * 50_000, message_id="<big@x>"))
    with mailbox(dovecot, max_bytes=10_000).session() as session:
        [fetched] = session.fetch([uid])
    assert fetched.raw is None
    assert fetched.size > 50_000
    assert b"<big@x>" in fetched.header


def test_a_refused_login_is_a_connector_unavailable_not_a_crash(dovecot):
    wrong = ImapMailbox(host=dovecot.host, port=dovecot.port, user=dovecot.user, password="nope", ssl=False)
    with pytest.raises(ConnectorUnavailable, match=r"ops@example\.com"), wrong.session():
        pass


def test_a_folder_that_does_not_exist_is_a_connector_unavailable(dovecot):
    with pytest.raises(ConnectorUnavailable, match="Nowhere"), mailbox(dovecot, folder="Nowhere").session():
        pass
