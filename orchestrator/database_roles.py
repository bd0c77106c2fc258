"""The database roles of a managed PostgreSQL: an owner that migrates and owns the tables, an app role that cannot
touch the audit log's history or its triggers.

Only a table's owner (or a superuser) may ALTER TABLE … DISABLE TRIGGER or DROP TRIGGER, so the
append-only triggers of `audit_events` hold against the app role only if it owns nothing: the owner
runs the migrations (`opsos db migrate` with the owner's DATABASE_URL) and the web, worker and
scheduler processes connect as the app role, which may SELECT and INSERT audit events and nothing
else on that table. The embedded default connects as a superuser, for whom none of this holds: there
the anchors (`orchestrator/anchors.py`) are what detect a rewrite.
"""
from __future__ import annotations

import re

# Role names are spliced into SQL (CREATE ROLE takes no parameters): plain lower-case identifiers only.
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
AUDIT_TABLE = "audit_events"
AUDIT_SEQUENCE = "audit_events_id_seq"


def check_role_name(name: str) -> str:
    """`name` if it is a plain identifier (lower-case letters, digits, _); raises ValueError otherwise."""
    if not ROLE_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain role name (lower-case letters, digits and _, at most 63)")
    return name


def app_role_statements(*, app_role: str, owner_role: str, reassign: bool = False) -> list[str]:
    """The statements that set up both roles in the current database, in order; run them as a superuser or the
    managed service's admin user, once, and again after a migration that adds a table. Idempotent.

    `reassign` gives whatever the app role owns now (an install whose app role ran the migrations) to the owner.
    Raises ValueError for a role name that is not a plain identifier, or for one role used twice.
    """
    app, owner = check_role_name(app_role), check_role_name(owner_role)
    if app == owner:
        raise ValueError("the app role must not be the owner role: an owner may disable the audit triggers")
    statements = [
        _create_if_missing(owner, "LOGIN"),
        _create_if_missing(app, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"),
        # A role created before, by hand, might be able to do anything: refuse to go on rather than pretend.
        f"""DO $$ BEGIN
    IF (SELECT rolsuper OR rolbypassrls OR rolcreaterole FROM pg_roles WHERE rolname = '{app}') THEN
        RAISE EXCEPTION 'role {app} is a superuser or may create roles: it could disable the audit triggers';
    END IF;
END $$""",
        # Membership in the owner would hand back every owner's right, ALTER TABLE included.
        f"REVOKE {owner} FROM {app}",
    ]
    if reassign:
        statements.append(f"REASSIGN OWNED BY {app} TO {owner}")
    statements += [
        f"GRANT USAGE, CREATE ON SCHEMA public TO {owner}",
        # Before PostgreSQL 15 every role may create in `public`; the app role needs no object of its own.
        f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {app}",
        f"GRANT USAGE ON SCHEMA public TO {app}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app}",
        # The audit log: read and append, nothing else (no UPDATE, DELETE, TRUNCATE, TRIGGER or REFERENCES).
        f"REVOKE ALL ON {AUDIT_TABLE} FROM PUBLIC, {app}",
        f"GRANT SELECT, INSERT ON {AUDIT_TABLE} TO {app}",
        # nextval needs USAGE only; without UPDATE the app role cannot setval the ids back onto old events.
        f"REVOKE UPDATE ON SEQUENCE {AUDIT_SEQUENCE} FROM PUBLIC, {app}",
        # Tables a later migration adds (run by the owner) are the app's to use like the others.
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public"
        f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {app}",
    ]
    return statements


def _create_if_missing(role: str, options: str) -> str:
    # CREATE ROLE has no IF NOT EXISTS; an existing role (the managed service's admin, say) is kept as it is.
    return f"""DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
        CREATE ROLE {role} {options};
    END IF;
END $$"""


def script(statements: list[str]) -> str:
    """The statements as one SQL script to read or pipe into psql."""
    return "".join(f"{statement};\n" for statement in statements)
