"""Importing a people CSV through the control plane: one transaction with its audit event, bad lines listed."""
from datetime import UTC, datetime

import pytest

from connectors import BadFile
from orchestrator import contacts
from tests.orchestrator.helpers import count

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_an_import_is_audited_with_its_counts_and_bad_lines(services, db, tmp_path):
    services.clock = lambda: NOW
    path = tmp_path / "people.csv"
    path.write_bytes(b"email,name\nana@example.com,Ana\nnope,Bad\nben@example.com,Be\xffn\ncleo@example.com,Cleo\n")
    heard: list[int] = []
    summary = contacts.import_csv(services, path, actor="console:operator", progress=heard.append)
    assert (summary.inserted, summary.updated, summary.unchanged) == (2, 0, 0)
    assert [(b.line, b.reason.split(" (")[0]) for b in summary.skipped] == [
        (3, "“nope” is not an email address"), (4, "not UTF-8")]
    assert sum(heard) == 4  # every line after the header, the bad ones too
    with db.connection() as conn:
        [event] = conn.execute("SELECT actor, at, payload FROM audit_events WHERE kind = 'contacts.imported'"
                               ).fetchall()
    assert (event["actor"], event["at"]) == ("console:operator", NOW)
    assert event["payload"]["inserted"] == 2 and event["payload"]["skipped"] == 2
    assert [b["line"] for b in event["payload"]["bad_lines"]] == [3, 4]


def test_a_file_that_is_no_contact_list_imports_nothing_and_audits_nothing(services, db, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("name,plan\nAna,monthly\n")
    with pytest.raises(BadFile, match="no email column"):
        contacts.import_csv(services, path, actor="console:operator")
    assert count(db, "crm_contacts") == 0
    assert count(db, "audit_events", "kind = 'contacts.imported'") == 0
