"""`opsos db roles` and `opsos db migrate`: the database set-up of a managed PostgreSQL, owner and app role apart."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="set up the database roles and run the migrations")
    actions = parser.add_subparsers(dest="db_command", required=True)
    roles = actions.add_parser("roles", help="print (or --apply) the SQL that makes an owner role and an app role "
                                             "that cannot disable the audit log's triggers")
    roles.add_argument("--app-role", required=True, help="the role web, worker and scheduler connect as")
    roles.add_argument("--owner-role", default="opsos_owner", help="the role that migrates and owns the tables")
    roles.add_argument("--reassign", action="store_true",
                       help="give what the app role owns now (it ran the migrations before) to the owner")
    roles.add_argument("--apply", action="store_true",
                       help="run the statements on DATABASE_URL (as a superuser or the service's admin user)")
    roles.set_defaults(run=run_roles, default_log_level="warning")
    migrate = actions.add_parser("migrate", help="apply pending migrations (run with the owner role's DATABASE_URL)")
    migrate.set_defaults(run=run_migrate, default_log_level="info")


def run_roles(args: argparse.Namespace) -> int:
    from orchestrator import Settings, database_roles

    try:
        statements = database_roles.app_role_statements(app_role=args.app_role, owner_role=args.owner_role,
                                                        reassign=args.reassign)
    except ValueError as error:
        print(f"opsos db roles: {error}")
        return 2
    if not args.apply:
        print(database_roles.script(statements), end="")
        return 0
    import psycopg

    settings = Settings()
    if not settings.database_url:
        print("opsos db roles --apply: set DATABASE_URL; the embedded PostgreSQL runs as a superuser, whose rights "
              "no role set-up removes (the audit anchors are what detect a rewrite there)")
        return 2
    with psycopg.connect(settings.database_url) as conn, conn.transaction():
        for statement in statements:
            conn.execute(statement)
    print(f"roles set up: {args.owner_role} owns the tables, {args.app_role} may append audit events only")
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    from orchestrator import Settings, open_stores

    open_stores(Settings()).close()
    return 0
