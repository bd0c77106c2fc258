"""The fence: a connector called for a run whose hold is lost stops before it acts, and touches nothing."""
import pytest

from connectors import Charge, EmailConnector, OutgoingEmail, SandboxPayments, SmtpEmailBackend, fenced
from tests.orchestrator.helpers import count
from tests.standins.smtp import SmtpStandIn


class Lost(Exception):
    pass


class LostHold:
    owner = "run:1:lost"

    def check(self) -> None:
        raise Lost("the run is another worker's now")


def test_a_charge_under_a_lost_hold_charges_nothing_and_claims_no_key(db):
    """The sandbox charge did not go through a claim before: nothing checked the run was still the worker's."""
    payments = SandboxPayments(db)
    with fenced(LostHold()), pytest.raises(Lost):
        payments.execute(action=Charge(customer="c-1", amount_cents=500), key="run:1:collect:c-1")
    assert payments.ledger() == [] and count(db, "connector_actions") == 0


def test_an_email_under_a_lost_hold_never_reaches_the_server(db):
    with SmtpStandIn() as smtp:
        email = EmailConnector(db, SmtpEmailBackend(host=smtp.host, port=smtp.port))
        mail = OutgoingEmail(to="ana@example.com", subject="Hi", body="Hi Ana", sender="ops@example.com")
        with fenced(LostHold()), pytest.raises(Lost):
            email.execute(action=mail, key="run:1:send:ana")
        assert smtp.messages == [] and count(db, "connector_actions") == 0
