"""`opsos digest`: print today's digest in the console and write its budget chart to a PNG file."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("digest", help="print the daily digest and save its budget chart")
    parser.add_argument("--png", type=Path, default=None, help="where to write the chart (default: data folder)")
    parser.add_argument("--send", action="store_true", help="also queue it to the home channel (OPSOS_HOME_CHANNEL)")
    parser.set_defaults(run=run, default_log_level="warning")


def run(args: argparse.Namespace) -> int:
    from bot.console import ConsoleRenderer
    from orchestrator import Settings, build_services, delivery, views

    settings = Settings()
    services = build_services(settings)
    try:
        with services.stores.pool.connection() as conn, conn.transaction():
            message = views.digest.build(conn, settings=settings, now=services.now())
            if args.send:
                delivery.post_scheduled(conn, home=settings.home_channel, message=message)
    finally:
        services.close()
    print(ConsoleRenderer().render(message=message))
    for attachment in message.attachments:
        path = args.png or settings.data_dir / "digests" / attachment.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(attachment.data)
        print(f"chart: {path.resolve()}")
    return 0
