"""The database's checks: it answers, has the `vector` extension, its schema matches this opsos, and whether the
role opsos connects as could rewrite the audit log. Read-only: nothing is migrated or changed."""
from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from orchestrator.database_roles import AUDIT_TABLE
from orchestrator.doctor.verdict import Verdict, failed, ok, warning
from orchestrator.migrations import COMPONENTS, TRACKING_EXISTS, SchemaTooNew
from orchestrator.words import doctor as said

PART, SCHEMA, RIGHTS = "database", "schema", "audit rights"
VECTOR = "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
APPLIED = "SELECT component, version FROM schema_migrations"
# Any of these lets the role change recorded history: a superuser or the table's owner (or a member of the owner)
# may switch the append-only triggers off; UPDATE or DELETE rights are what those triggers alone stand between.
AUDIT_POWERS = f"""
SELECT current_user AS role,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       pg_has_role(current_user, (SELECT tableowner FROM pg_tables WHERE schemaname = current_schema()
                                  AND tablename = '{AUDIT_TABLE}'), 'USAGE') AS owner,
       has_table_privilege('{AUDIT_TABLE}', 'UPDATE') OR has_table_privilege('{AUDIT_TABLE}', 'DELETE') AS rewrite
"""


def check_database(url: str, *, embedded: bool, timeout: float = 5.0) -> list[Verdict]:
    """The database's verdicts, over one connection; one failed verdict when it cannot be reached."""
    try:
        conn = psycopg.connect(url, connect_timeout=max(int(timeout), 1), autocommit=True, row_factory=dict_row)
    except psycopg.Error as error:
        return [failed(PART, said.database_unreachable(_first_line(error)),
                       said.EMBEDDED_DATABASE_FIX if embedded else said.DATABASE_FIX)]
    with conn:
        info = conn.info
        verdicts = [ok(PART, said.database_reached(f"{info.host}:{info.port}/{info.dbname}", embedded=embedded))]
        vector = conn.execute(VECTOR).fetchone()
        if vector is None:
            verdicts.append(failed(PART, said.VECTOR_MISSING, said.VECTOR_FIX))
        else:
            verdicts.append(ok(PART, said.vector_present(vector["extversion"])))
        verdicts.append(_schema(conn))
        if conn.execute(TRACKING_EXISTS).fetchone() is not None and _has_audit_table(conn):
            verdicts.append(_rights(conn, embedded=embedded))
    return verdicts


def _schema(conn: psycopg.Connection) -> Verdict:
    done: set[tuple[str, int]] = set()
    if conn.execute(TRACKING_EXISTS).fetchone() is not None:
        done = {(row["component"], row["version"]) for row in conn.execute(APPLIED).fetchall()}
    newer = {}
    for component in {c for c, _ in done}:
        have, known = max(v for c, v in done if c == component), len(COMPONENTS.get(component, []))
        if have > known:
            newer[component] = (have, known)
    if newer:
        # Reported, not raised: the doctor says what is wrong with every part, this one included.
        return failed(SCHEMA, said.schema_too_new(str(SchemaTooNew(newer))), said.SCHEMA_TOO_NEW_FIX)
    pending = sum(1 for component, migrations in COMPONENTS.items()
                  for version in range(1, len(migrations) + 1) if (component, version) not in done)
    if pending:
        return failed(SCHEMA, said.schema_pending(pending), said.MIGRATE_FIX)
    return ok(SCHEMA, said.schema_current(len(done)))


def _has_audit_table(conn: psycopg.Connection) -> bool:
    found = conn.execute("SELECT to_regclass(%s) AS audit", (AUDIT_TABLE,)).fetchone()
    return found is not None and found["audit"] is not None


def _rights(conn: psycopg.Connection, *, embedded: bool) -> Verdict:
    powers = conn.execute(AUDIT_POWERS).fetchone()
    assert powers is not None
    if embedded:
        # The embedded server has one role, a superuser: expected, and the anchors cover it.
        return ok(RIGHTS, said.RIGHTS_EMBEDDED)
    how = ("is a superuser" if powers["superuser"] else "owns audit_events" if powers["owner"]
           else "may UPDATE or DELETE audit_events" if powers["rewrite"] else None)
    if how is None:
        return ok(RIGHTS, said.rights_append_only(powers["role"]))
    return warning(RIGHTS, said.rights_can_rewrite(powers["role"], how), said.RIGHTS_FIX)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")
