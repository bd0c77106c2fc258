"""The books connector: a transaction's category in the sandbox books, set once per key and restorable."""
from __future__ import annotations

from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from connectors.errors import UnknownRecord
from connectors.idempotency import ActionClaims

CURRENT = "SELECT category, categorised_by FROM books_transactions WHERE id = %s FOR UPDATE"
SET = "UPDATE books_transactions SET category = %s, categorised_by = %s WHERE id = %s"
# Only a category this key set is put back: one the operator changed since is theirs to keep.
RESTORE = """
UPDATE books_transactions SET category = %(previous)s, categorised_by = %(previous_by)s
WHERE id = %(transaction_id)s AND category = %(category)s
"""


class Categorisation(BaseModel):
    transaction_id: int
    category: str = Field(min_length=1)
    by: str = Field(min_length=1, description="Who chose the category, kept beside it in the books")


class Categorised(BaseModel):
    transaction_id: int
    category: str
    # False when the transaction already had a category: one already given is never overwritten.
    changed: bool
    duplicate: bool


class SandboxBooks:
    """The books are a table in PostgreSQL; a bank or accounting connector would implement the same two calls."""

    name = "books"

    def __init__(self, pool: ConnectionPool, *, claims: ActionClaims | None = None) -> None:
        self.pool = pool
        self.claims = claims or ActionClaims()

    def execute(self, *, action: Categorisation, key: str) -> Categorised:
        """Categorise an uncategorised transaction once per key. Raises UnknownRecord for a missing transaction.

        The claim, the row lock, the update and the record share one transaction: a crash keeps all or
        none, and a second worker with the same key waits on the claimed key, then finds it done.
        """
        with self.pool.connection() as conn, conn.transaction():
            done = self.claims.claim(conn, key=key, connector=self.name, action="categorise",
                                     request=action.model_dump()).done
            if done is not None and done.state == "done" and done.result is not None:
                return Categorised.model_validate({**done.result, "duplicate": True})
            before = conn.execute(CURRENT, (action.transaction_id,)).fetchone()
            if before is None:
                raise UnknownRecord(f"no transaction {action.transaction_id}", record=str(action.transaction_id))
            changed = before["category"] is None
            if changed:
                conn.execute(SET, (action.category, action.by, action.transaction_id))
            result = {"transaction_id": action.transaction_id, "category": action.category, "changed": changed,
                      "previous": before["category"], "previous_by": before["categorised_by"]}
            self.claims.finish(conn, key=key, result=result)
        return Categorised.model_validate({**result, "duplicate": False})

    def compensate(self, *, key: str) -> str:
        """Put back the category the transaction had before `key` set one (none, for the agent's)."""
        with self.pool.connection() as conn, conn.transaction():
            record = self.claims.for_undo(conn, key)
            if record is not None and record.state == "compensated":
                return "already undone"
            if record is None or record.state != "done" or record.result is None:
                return "nothing was categorised"
            result = record.result
            if not result["changed"]:
                return f"transaction {result['transaction_id']} kept the category it already had"
            restored = conn.execute(RESTORE, result).rowcount
            self.claims.finish(conn, key=key, result=result, state="compensated")
        if not restored:
            return f"transaction {result['transaction_id']} was recategorised since; left as it is"
        return f"transaction {result['transaction_id']} back to {result['previous'] or 'uncategorised'}"
