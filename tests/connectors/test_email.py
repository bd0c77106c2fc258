"""The email connector: a key sends once, over SMTP and into the .eml folder; a lost outcome is retried safely."""
import smtplib

import pytest

from connectors import (
    ActionDeclined,
    CircuitBreaker,
    ConnectorUnavailable,
    EmailConnector,
    FileEmailBackend,
    OutgoingEmail,
    RetryPolicy,
    SmtpEmailBackend,
    message_id_for,
)
from tests.standins.smtp import SmtpStandIn

MAIL = OutgoingEmail(to="ana@example.com", subject="We miss you", body="Hi Ana", sender="ops@example.com")


@pytest.fixture
def smtp():
    with SmtpStandIn() as server:
        yield server


def test_file_backend_sends_a_key_once_and_the_file_is_a_real_email(db, tmp_path):
    connector = EmailConnector(db, FileEmailBackend(tmp_path))
    first = connector.execute(action=MAIL, key="run:1:send:ana")
    second = connector.execute(action=MAIL, key="run:1:send:ana")
    files = list(tmp_path.glob("*.eml"))
    assert len(files) == 1 and not first.duplicate and second.duplicate
    import email

    parsed = email.message_from_bytes(files[0].read_bytes())
    assert parsed["To"] == "ana@example.com" and parsed["Message-ID"] == message_id_for("run:1:send:ana")


def test_smtp_backend_sends_a_key_once(db, smtp):
    connector = EmailConnector(db, SmtpEmailBackend(host=smtp.host, port=smtp.port))
    connector.execute(action=MAIL, key="k-1")
    connector.execute(action=MAIL, key="k-1")
    connector.execute(action=MAIL, key="k-2")
    assert [m.message_id for m in smtp.messages] == [message_id_for("k-1"), message_id_for("k-2")]


def test_an_odd_answer_to_quit_after_the_message_was_accepted_is_still_a_sent_email(db, smtp):
    """Review defect 7: a non-221 QUIT after DATA was accepted was taken for a failure, so a retry sent it again."""
    smtp.quit_reply = "421 standin.local closing the connection"
    connector = EmailConnector(db, SmtpEmailBackend(host=smtp.host, port=smtp.port))
    sent = connector.execute(action=MAIL, key="k-quit")
    again = connector.execute(action=MAIL, key="k-quit")
    assert not sent.duplicate and again.duplicate
    assert [m.message_id for m in smtp.messages] == [message_id_for("k-quit")]


def test_transient_smtp_refusal_is_retried_then_sent(db, smtp):
    smtp.fail_next()
    connector = EmailConnector(db, SmtpEmailBackend(host=smtp.host, port=smtp.port),
                               retry=RetryPolicy(attempts=3, base_seconds=0.01, retry_declines=False))
    connector.execute(action=MAIL, key="k-retry")
    assert len(smtp.messages) == 1


def test_unreachable_smtp_raises_unavailable_and_a_later_send_goes_through(db, smtp):
    down = EmailConnector(db, SmtpEmailBackend(host="127.0.0.1", port=1, timeout=1),
                          retry=RetryPolicy(attempts=2, base_seconds=0.01, retry_declines=False))
    with pytest.raises(ConnectorUnavailable):
        down.execute(action=MAIL, key="k-later")
    up = EmailConnector(db, SmtpEmailBackend(host=smtp.host, port=smtp.port))
    assert not up.execute(action=MAIL, key="k-later").duplicate
    assert len(smtp.messages) == 1


def test_circuit_opens_after_repeated_unavailability_and_refuses_without_trying():
    clock = [0.0]
    breaker = CircuitBreaker("smtp", threshold=2, reset_after=30, clock=lambda: clock[0])
    calls = []

    def down():
        calls.append(1)
        raise ConnectorUnavailable("down")

    for _ in range(2):
        with pytest.raises(ConnectorUnavailable):
            breaker.call(down)
    with pytest.raises(ConnectorUnavailable) as refused:
        breaker.call(down)
    assert len(calls) == 2 and refused.value.retry_after == 30
    clock[0] = 31
    assert breaker.call(lambda: "ok") == "ok"


def test_smtp_permanent_refusal_is_not_retried_and_the_key_stays_open(db, smtp):
    smtp.fail_next(code=550, text="5.1.1 mailbox unavailable")
    connector = EmailConnector(db, SmtpEmailBackend(host=smtp.host, port=smtp.port))
    with pytest.raises(ActionDeclined) as declined:
        connector.execute(action=MAIL, key="k-perm")
    assert declined.value.reason == "smtp_550"
    assert isinstance(declined.value.__cause__, smtplib.SMTPResponseException)
    assert smtp.messages == []
    assert not connector.execute(action=MAIL, key="k-perm").duplicate
