"""Importing contacts into PostgreSQL: re-imports update by address without duplicates, and look-ups find by
name, address or id, several when several match."""
import io
from datetime import UTC, datetime

import psycopg
import pytest

from connectors import ContactCsv, ContactRow, SandboxCrm, import_rows

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HEADER = "email,name,plan,monthly amount,status,Company\n"


def load(db, text: str, now: datetime = NOW):
    good = [r for r in ContactCsv(io.StringIO(text, newline="")) if isinstance(r, ContactRow)]
    with db.connection() as conn, conn.transaction():
        return import_rows(conn, good, now=now)


def all_contacts(db) -> list[dict]:
    with db.connection() as conn:
        return conn.execute("SELECT * FROM crm_contacts ORDER BY email").fetchall()


def test_a_second_import_updates_by_address_and_counts_the_unchanged(db):
    """Proves re-import matches by address whatever its case: no duplicate, only the changed row updated, the
    rest counted unchanged, ids and creation times kept."""
    first = load(db, HEADER + "ana@example.com,Ana Souza,monthly,12,active,Souza Studio\n"
                              "ben@example.com,Ben Okafor,monthly,12,active,\n")
    assert first.model_dump() == {"inserted": 2, "updated": 0, "unchanged": 0}
    before = {c["email"]: c for c in all_contacts(db)}
    later = datetime(2026, 3, 2, tzinfo=UTC)
    second = load(db, HEADER + "ANA@EXAMPLE.COM,Ana Souza,annual,100,active,Souza Studio\n"
                               "ben@example.com,Ben Okafor,monthly,12,active,\n"
                               "cleo@example.com,Cleo,,,,\n", now=later)
    assert second.model_dump() == {"inserted": 1, "updated": 1, "unchanged": 1}
    after = {c["email"]: c for c in all_contacts(db)}
    assert sorted(after) == ["ana@example.com", "ben@example.com", "cleo@example.com"]
    ana = after["ana@example.com"]
    assert (ana["plan"], ana["monthly_cents"], ana["id"]) == ("annual", 10000, before["ana@example.com"]["id"])
    assert (ana["created_at"], ana["updated_at"]) == (NOW, later)
    assert after["ben@example.com"]["updated_at"] == NOW
    # No plan and no amount: a lead, not a customer.
    assert after["cleo@example.com"]["status"] == "lead"


def test_empty_cells_and_missing_columns_keep_what_opsos_has_and_attributes_merge(db):
    load(db, HEADER + "ana@example.com,Ana Souza,monthly,12,lapsed,Souza Studio\n")
    counts = load(db, "email,notes,Country\nana@example.com,prefers email,BR\n")
    assert counts.updated == 1
    [ana] = all_contacts(db)
    assert (ana["name"], ana["plan"], ana["monthly_cents"], ana["status"]) == ("Ana Souza", "monthly", 1200, "lapsed")
    assert ana["notes"] == "prefers email"
    assert ana["attributes"] == {"Company": "Souza Studio", "Country": "BR"}


def test_imported_ids_are_short_unique_and_not_reused_for_an_address(db):
    load(db, HEADER + "a@example.com,A,,,,\nb@example.com,B,,,,\n")
    ids = [c["id"] for c in all_contacts(db)]
    assert len(set(ids)) == 2 and all(i.startswith("c-") and i[2:].isdigit() for i in ids)


def test_one_address_whatever_its_case_is_one_contact(db):
    """The unique index on lower(email): another writer cannot add Ana a second time in capitals."""
    load(db, HEADER + "ana@example.com,Ana,,,,\n")
    crm = SandboxCrm(db)
    [ana] = crm.find("ana@example.com")
    with pytest.raises(psycopg.errors.UniqueViolation):
        crm.upsert([ana.model_copy(update={"id": "c-other", "email": "Ana@Example.com"})])


def test_find_by_id_address_whole_name_or_part_of_a_name(db):
    load(db, HEADER + "ana@example.com,Ana Souza,,,,\nana.lima@example.com,Ana Lima,,,,\nben@example.com,Ben,,,,\n")
    crm = SandboxCrm(db)
    [ben] = crm.find("ben@EXAMPLE.com")
    assert [c.email for c in crm.find(ben.id)] == ["ben@example.com"]
    assert [c.email for c in crm.find("ana souza")] == ["ana@example.com"]
    assert [c.email for c in crm.find("Souza")] == ["ana@example.com"]
    assert [c.name for c in crm.find("Ana")] == ["Ana Lima", "Ana Souza"]
    assert crm.find("Zoe") == [] and crm.find("  ") == []
    assert len(crm.find("a", limit=2)) == 2


def test_an_empty_import_changes_nothing(db):
    assert load(db, "email,name\n").model_dump() == {"inserted": 0, "updated": 0, "unchanged": 0}
    assert all_contacts(db) == []
