"""PostgreSQL's own tools for the backup: `pg_dump` of one snapshot, `pg_restore` into an empty database.

The tools come from the pgserver package (PostgreSQL 16, the embedded server's own), else from PATH; a
configured server newer than the tools is reported in pg_dump's own words. The password travels in the
environment, never on a command line that `ps` shows.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo


class ToolFailed(RuntimeError):
    """pg_dump or pg_restore ended with an error; the message is the tool's own last lines."""


def tool(name: str) -> Path:
    try:
        import pgserver._commands as bundled

        path = Path(bundled.POSTGRES_BIN_PATH) / name
        if path.is_file():
            return path
    except ImportError:
        pass
    found = shutil.which(name)
    if found is None:
        raise ToolFailed(f"{name} was not found: install the pgserver package or PostgreSQL's client tools")
    return Path(found)


def _target(database_url: str) -> tuple[str, dict[str, str]]:
    """The conninfo without its password, and the environment that carries it."""
    params = conninfo_to_dict(database_url)
    password = params.pop("password", None)
    env = {**os.environ}
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: v for k, v in params.items() if v is not None}), env


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = "\n".join(done.stderr.strip().splitlines()[-5:]) or f"exit code {done.returncode}"
        raise ToolFailed(f"{Path(args[0]).name} failed: {said}")


def dump(database_url: str, dest: Path, *, snapshot: str) -> None:
    """Dump the database as it was in the exported `snapshot` (custom format, compressed) to `dest`."""
    conninfo, env = _target(database_url)
    _run([str(tool("pg_dump")), "--format=custom", f"--snapshot={snapshot}", f"--file={dest}",
          f"--dbname={conninfo}"], env)


def restore(database_url: str, source: Path) -> None:
    """Restore a dump into an empty database in one transaction (all or nothing), owned by whoever connects."""
    conninfo, env = _target(database_url)
    _run([str(tool("pg_restore")), "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
          f"--dbname={conninfo}", str(source)], env)
