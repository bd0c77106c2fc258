"""`opsos up`: the web process, the workers and the scheduler from one command, supervised (`bot/supervisor.py`)."""
from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("up", help="run all of opsos on this machine: web, workers and scheduler")
    parser.add_argument("--workers", type=int, default=2, help="RQ worker processes (default: 2)")
    parser.add_argument("--host", default="127.0.0.1", help="interface the web process listens on")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")),
                        help="port (default: $PORT or 8080)")
    parser.add_argument("--grace", type=float, default=30.0,
                        help="seconds a stopping child gets to finish before it is killed (default: 30)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from bot.supervisor import Role, Supervisor
    from orchestrator import Settings, open_stores

    if args.workers < 1:
        print("opsos up: --workers takes 1 or more")
        return 2
    stores = open_stores(Settings())
    roles = [Role("web", ("serve", "--host", args.host, "--port", str(args.port))),
             *[Role(f"worker-{n}", ("worker",)) for n in range(1, args.workers + 1)],
             Role("scheduler", ("scheduler",))]
    supervisor = Supervisor(roles, env=stores.child_env(), grace=args.grace)
    try:
        code = supervisor.run()
    finally:
        stores.close()
    if supervisor.refused is not None:
        print(f"opsos up: the {supervisor.refused.role.name} process refused its configuration (see its message "
              "above); fix it and start again")
    return code
