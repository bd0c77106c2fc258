"""`opsos serve`: the web process of the Procfile: Slack, Telegram and /healthz on one aiohttp server."""
from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="serve Slack and Telegram (the Procfile's web process)")
    parser.add_argument("--host", default="0.0.0.0", help="interface to listen on (default: all)")
    # PORT is what platforms such as Heroku or Render hand the web process.
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")),
                        help="port (default: $PORT or 8080)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.access_log import AccessLogger
    from bot.dashboard import add_dashboard
    from bot.errors import ConfigurationError
    from bot.server import build_web_app, front_ends
    from orchestrator import Operations, Settings, build_services, doctor, router_classifier

    settings = Settings()
    services = build_services(settings)
    ops = Operations(services, router_classifier(settings.kinds_file))
    try:
        # A wrong Slack, Telegram or Stripe key is found now, in the doctor's words, not at the first message or the
        # first charge of a customer's renewal; a failure here is the operator's to fix, so restarting cannot help.
        verdicts = doctor.start_checks(services)
        for verdict in verdicts:
            print(f"opsos serve: {verdict.render()}")
        if not doctor.passed(verdicts):
            return 2
        try:
            apps = front_ends(ops, settings)
        except ConfigurationError as error:
            print(f"opsos serve: {error}")
            return 2
        if apps.slack is None and apps.telegram is None:
            print("opsos serve: neither OPSOS_SLACK_BOT_TOKEN nor OPSOS_TELEGRAM_BOT_TOKEN is set; "
                  "serving the dashboard, /metrics and /healthz only")
        app = build_web_app(ops, settings, apps, extensions=[lambda web_app: add_dashboard(web_app, ops)])
        try:
            web.run_app(app, host=args.host, port=args.port, print=None, access_log_class=AccessLogger)
        except ConfigurationError as error:  # found at start-up, e.g. Slack refusing the app token
            print(f"opsos serve: {error}")
            return 2
    finally:
        services.close()
    return 0
