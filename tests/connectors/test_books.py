"""The sandbox books: a category is set once per key, never over one already given, and put back on compensation."""
import pytest

from connectors import Categorisation, ConnectorError, SandboxBooks, UnknownRecord

AGENT_HOSTING = Categorisation(transaction_id=1, category="hosting", by="agent")


def _transaction(db, *, category: str | None = None) -> None:
    with db.connection() as conn:
        conn.execute("INSERT INTO books_transactions (source, ref, at, amount_cents, counterparty, category)"
                     " VALUES ('bank', 'b1', now(), -2000, 'Hetzner', %s)", (category,))


def _category(db) -> tuple[str | None, str | None]:
    with db.connection() as conn:
        row = conn.execute("SELECT category, categorised_by FROM books_transactions WHERE id = 1").fetchone()
    return row["category"], row["categorised_by"]


def test_categorise_twice_with_one_key_categorises_once(db):
    books = SandboxBooks(db)
    _transaction(db)
    first = books.execute(action=AGENT_HOSTING, key="run:1:execute:0:categorise:1")
    # Cleared in between: only the key, not the row's state, can stop the second call from setting it again.
    with db.connection() as conn:
        conn.execute("UPDATE books_transactions SET category = NULL, categorised_by = NULL")
    second = books.execute(action=AGENT_HOSTING, key="run:1:execute:0:categorise:1")
    assert first.changed and not first.duplicate
    assert second.duplicate and second.category == "hosting"
    assert _category(db) == (None, None)


def test_categorise_keeps_a_category_already_given(db):
    books = SandboxBooks(db)
    _transaction(db, category="software")
    result = books.execute(action=AGENT_HOSTING, key="k")
    assert not result.changed and _category(db) == ("software", None)
    assert books.compensate(key="k") == "transaction 1 kept the category it already had"
    assert _category(db) == ("software", None)


def test_compensate_restores_the_previous_category_once(db):
    books = SandboxBooks(db)
    _transaction(db)
    books.execute(action=AGENT_HOSTING, key="k")
    assert _category(db) == ("hosting", "agent")
    assert books.compensate(key="k") == "transaction 1 back to uncategorised"
    assert _category(db) == (None, None)
    assert books.compensate(key="k") == "already undone"
    assert books.compensate(key="never-used") == "nothing was categorised"


def test_compensate_leaves_a_category_the_operator_changed_since(db):
    books = SandboxBooks(db)
    _transaction(db)
    books.execute(action=AGENT_HOSTING, key="k")
    with db.connection() as conn:
        conn.execute("UPDATE books_transactions SET category = 'office', categorised_by = 'operator'")
    assert books.compensate(key="k") == "transaction 1 was recategorised since; left as it is"
    assert _category(db) == ("office", "operator")


def test_categorising_a_missing_transaction_is_refused_and_claims_no_key(db):
    books = SandboxBooks(db)
    with pytest.raises(UnknownRecord) as refused:
        books.execute(action=AGENT_HOSTING, key="k")
    assert isinstance(refused.value, ConnectorError) and refused.value.record == "1"
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM connector_actions").fetchone()["n"] == 0
