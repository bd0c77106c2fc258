"""Each doctor check against the real servers and the stand-ins answering good, bad-token and unreachable: its
verdict and the words the operator reads."""
from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from redis import Redis

from orchestrator.doctor.clock import check_clock
from orchestrator.doctor.database import check_database
from orchestrator.doctor.home_channel import check_home_channel
from orchestrator.doctor.mailbox import check_mailbox
from orchestrator.doctor.models import check_models
from orchestrator.doctor.payments import check_stripe
from orchestrator.doctor.redis_server import check_redis
from orchestrator.doctor.slack import check_slack
from orchestrator.doctor.telegram import check_telegram
from orchestrator.doctor.verdict import Outcome
from orchestrator.services import build_services
from orchestrator.words import doctor as said
from tests.standins.fixtures import SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET
from tests.standins.stripe_api import API_KEY


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: the stand-in for a server that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def outcomes(verdicts) -> list[tuple[str, Outcome]]:
    return [(v.part, v.outcome) for v in verdicts]


# -- the database -----------------------------------------------------------------------------------------------


def test_a_migrated_database_answers_with_vector_and_a_current_schema(database_url):
    verdicts = check_database(database_url, embedded=False)
    assert outcomes(verdicts)[:3] == [("database", Outcome.OK), ("database", Outcome.OK), ("schema", Outcome.OK)]
    assert "vector extension" in verdicts[1].line and "schema is current" in verdicts[2].line


def test_a_superuser_on_a_managed_database_is_a_warning_and_on_the_embedded_one_a_note(database_url):
    managed = check_database(database_url, embedded=False)[-1]
    assert (managed.part, managed.outcome, managed.fix) == ("audit rights", Outcome.WARNING, said.RIGHTS_FIX)
    assert "is a superuser: it could rewrite the audit log's history" in managed.line
    embedded = check_database(database_url, embedded=True)[-1]
    assert (embedded.outcome, embedded.line) == (Outcome.OK, said.RIGHTS_EMBEDDED)


def test_an_app_role_that_may_only_append_to_the_audit_log_is_fine(database_url):
    role = f"doctor_app_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'")
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        admin.execute(f"GRANT INSERT ON audit_events TO {role}")
    url = psycopg.conninfo.make_conninfo(database_url, user=role, password="pw")
    rights = check_database(url, embedded=False)[-1]
    assert (rights.outcome, rights.line) == (Outcome.OK, said.rights_append_only(role))


def test_a_database_that_cannot_be_reached_is_one_failure_saying_to_check_the_url():
    verdicts = check_database(f"postgresql://opsos@127.0.0.1:{closed_port()}/opsos", embedded=False, timeout=2)
    assert outcomes(verdicts) == [("database", Outcome.FAILED)]
    assert verdicts[0].line.startswith("PostgreSQL cannot be reached: ") and verdicts[0].fix == said.DATABASE_FIX


def _fresh_database(pg_admin_url: str) -> str:
    name = f"doctor_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, query = pg_admin_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}?{query}"


def test_an_empty_database_lacks_vector_and_counts_every_migration_pending(pg_admin_url):
    from orchestrator.migrations import COMPONENTS

    verdicts = check_database(_fresh_database(pg_admin_url), embedded=False)
    assert outcomes(verdicts) == [("database", Outcome.OK), ("database", Outcome.FAILED), ("schema", Outcome.FAILED)]
    assert (verdicts[1].line, verdicts[1].fix) == (said.VECTOR_MISSING, said.VECTOR_FIX)
    total = sum(len(m) for m in COMPONENTS.values())
    assert (verdicts[2].line, verdicts[2].fix) == (said.schema_pending(total), said.MIGRATE_FIX)


def test_a_schema_newer_than_the_code_is_reported_by_name_not_raised(pg_admin_url):
    from orchestrator.migrations import ORCHESTRATOR_MIGRATIONS, migrate

    url = _fresh_database(pg_admin_url)
    with psycopg.connect(url) as conn:
        migrate(conn)
        conn.execute("INSERT INTO schema_migrations (component, version) VALUES ('orchestrator', %s)",
                     (len(ORCHESTRATOR_MIGRATIONS) + 1,))
    schema = check_database(url, embedded=False)[2]
    assert (schema.part, schema.outcome, schema.fix) == ("schema", Outcome.FAILED, said.SCHEMA_TOO_NEW_FIX)
    known = len(ORCHESTRATOR_MIGRATIONS)
    assert schema.line.startswith(f"The database's schema is newer than this opsos: orchestrator {known + 1} "
                                  f"(this opsos knows {known})")


# -- Redis and the clock ----------------------------------------------------------------------------------------


def test_redis_answers_ping_or_says_it_cannot_be_reached(redis_url):
    assert check_redis(Redis.from_url(redis_url)).outcome is Outcome.OK
    down = check_redis(Redis(host="127.0.0.1", port=closed_port(), socket_connect_timeout=2))
    assert (down.outcome, down.fix) == (Outcome.FAILED, said.REDIS_FIX)
    assert down.line.startswith("Redis cannot be reached: ")


def test_a_clock_a_minute_off_the_servers_is_a_warning_and_ten_minutes_a_failure(database_url, redis_url):
    redis = Redis.from_url(redis_url)
    agrees = check_clock(database_url=database_url, redis=redis, clock=lambda: datetime.now(UTC))
    assert agrees.outcome is Outcome.OK and agrees.line.startswith("This machine's clock agrees with PostgreSQL's")
    ahead = check_clock(database_url=database_url, redis=redis, clock=lambda: datetime.now(UTC) + timedelta(minutes=1))
    assert (ahead.outcome, ahead.fix) == (Outcome.WARNING, said.CLOCK_FIX)
    assert "PostgreSQL's (-60." in ahead.line and "Redis's (-60." in ahead.line
    far = check_clock(database_url=database_url, redis=redis, clock=lambda: datetime.now(UTC) - timedelta(minutes=10))
    assert far.outcome is Outcome.FAILED


def test_the_clock_is_not_compared_when_no_server_answers():
    verdict = check_clock(database_url=None, redis=None, clock=lambda: datetime.now(UTC))
    assert (verdict.outcome, verdict.line) == (Outcome.SKIPPED, said.CLOCK_NEEDS_STORES)


# -- Slack and Telegram -----------------------------------------------------------------------------------------


def _slack(settings, api_url, token=SLACK_BOT_TOKEN, **more):
    return settings.model_copy(update={"slack_bot_token": token, "slack_signing_secret": SLACK_SIGNING_SECRET,
                                       "slack_api_url": api_url, **more})


def test_slack_with_the_right_token_names_the_workspace_and_bot(settings, slack_api):
    verdicts = check_slack(_slack(settings, slack_api.api_url))
    assert outcomes(verdicts) == [("slack", Outcome.OK), ("slack signing secret", Outcome.OK)]
    assert verdicts[0].line.startswith("The bot token works (workspace ")
    assert [call.method for call in slack_api.calls] == ["auth.test"]


def test_slack_refusing_the_token_says_where_to_copy_the_right_one(settings, slack_api):
    verdict = check_slack(_slack(settings, slack_api.api_url, token="xoxb-wrong"))[0]
    assert (verdict.outcome, verdict.line, verdict.fix) == (Outcome.FAILED, "Slack refused the token (invalid_auth).",
                                                            said.SLACK_TOKEN_FIX)


def test_slack_out_of_reach_says_to_check_the_network(settings):
    verdict = check_slack(_slack(settings, f"http://127.0.0.1:{closed_port()}/api/"), timeout=2)[0]
    assert (verdict.outcome, verdict.fix) == (Outcome.FAILED, said.SLACK_REACH_FIX)
    assert verdict.line.startswith("Slack could not be reached at http://127.0.0.1:")


def test_slack_http_mode_without_a_signing_secret_and_socket_mode_without_an_app_token_fail(settings, slack_api):
    http = check_slack(_slack(settings, slack_api.api_url, slack_signing_secret=None))[1]
    assert (http.outcome, http.line) == (Outcome.FAILED, said.SIGNING_SECRET_MISSING)
    socket_mode = check_slack(_slack(settings, slack_api.api_url, slack_mode="socket"))[1]
    assert (socket_mode.part, socket_mode.outcome, socket_mode.line) == ("slack app token", Outcome.FAILED,
                                                                         said.APP_TOKEN_MISSING)


def test_slack_not_configured_is_skipped_without_a_call(settings):
    assert outcomes(check_slack(settings)) == [("slack", Outcome.SKIPPED)]


def _telegram(settings, api, token=None, **more):
    return settings.model_copy(update={"telegram_bot_token": token or api.token, "telegram_api_url": api.base_url,
                                       "telegram_mode": "polling", **more})


def test_telegram_with_the_right_token_names_the_bot(settings, telegram_api):
    verdicts = check_telegram(_telegram(settings, telegram_api))
    assert outcomes(verdicts) == [("telegram", Outcome.OK), ("telegram webhook", Outcome.OK)]
    assert verdicts[0].line == "The bot token works (@opsos_bot)."


def test_telegram_refusing_the_token_says_to_ask_botfather(settings, telegram_api):
    verdicts = check_telegram(_telegram(settings, telegram_api, token="7000000001:wrong"))
    assert [(v.outcome, v.line, v.fix) for v in verdicts] == [
        (Outcome.FAILED, "Telegram refused the token (Unauthorized).", said.TELEGRAM_TOKEN_FIX)]


def test_telegram_out_of_reach_says_to_check_the_network(settings):
    unreachable = settings.model_copy(update={"telegram_bot_token": "1:x",
                                              "telegram_api_url": f"http://127.0.0.1:{closed_port()}/bot"})
    verdict = check_telegram(unreachable, timeout=2)[0]
    assert (verdict.outcome, verdict.fix) == (Outcome.FAILED, said.TELEGRAM_REACH_FIX)


def test_telegram_webhook_registered_elsewhere_is_a_warning_and_the_same_url_is_fine(settings, telegram_api):
    wanted = "https://ops.example.com/telegram/webhook"
    webhook = _telegram(settings, telegram_api, telegram_mode="webhook", telegram_webhook_secret="s3cret",
                        telegram_webhook_url=wanted)
    differs = check_telegram(webhook)[-1]
    assert (differs.outcome, differs.line) == (Outcome.WARNING, said.webhook_differs("", wanted))
    telegram_api.webhook_url = wanted
    assert check_telegram(webhook)[-1].outcome is Outcome.OK
    no_secret = check_telegram(webhook.model_copy(update={"telegram_webhook_secret": None}))
    assert ("telegram webhook", Outcome.FAILED) in outcomes(no_secret)


# -- Stripe and the mailbox -------------------------------------------------------------------------------------


def _stripe_services(services, stripe_api, key=None, secret="whsec_test"):
    from pydantic import SecretStr

    key = key or SecretStr(API_KEY)
    settings = services.settings.model_copy(update={"payments": "stripe", "stripe_api_key": key,
                                                    "stripe_api_base": stripe_api.url,
                                                    "stripe_webhook_secret": secret})
    return build_services(settings, services.stores)


def test_stripe_with_the_right_key_and_a_webhook_secret_works(services, stripe_api):
    verdicts = check_stripe(_stripe_services(services, stripe_api))
    assert outcomes(verdicts) == [("payments", Outcome.OK), ("stripe webhook", Outcome.OK)]
    assert verdicts[0].line == said_stripe_works()


def said_stripe_works() -> str:
    from orchestrator import words

    return words.stripe_key_works("test")


def test_stripe_refusing_the_key_and_an_api_key_as_webhook_secret_both_fail(services, stripe_api):
    from pydantic import SecretStr

    verdicts = check_stripe(_stripe_services(services, stripe_api, key=SecretStr("sk_test_wrong"),
                                             secret="sk_test_oops"))
    assert outcomes(verdicts) == [("payments", Outcome.FAILED), ("stripe webhook", Outcome.FAILED)]
    assert "Developers → API keys" in verdicts[0].line
    assert (verdicts[1].line, verdicts[1].fix) == (said.STRIPE_SECRET_SHAPE, said.STRIPE_SECRET_FIX)


def test_the_mailbox_logs_in_and_opens_the_folder_or_says_what_to_check(settings, dovecot):
    from pydantic import SecretStr

    mail = settings.model_copy(update={"imap_host": dovecot.host, "imap_port": dovecot.port, "imap_ssl": False,
                                       "imap_user": dovecot.user, "imap_password": SecretStr(dovecot.password)})
    good = check_mailbox(mail)
    assert good.outcome is Outcome.OK and good.line.startswith(f"Logged in as {dovecot.user}; INBOX opens read-only")
    wrong = check_mailbox(mail.model_copy(update={"imap_password": SecretStr("wrong")}))
    assert (wrong.outcome, wrong.fix) == (Outcome.FAILED, said.IMAP_FIX)
    assert wrong.line.startswith("The mailbox cannot be read: IMAP 127.0.0.1:")
    down = check_mailbox(mail.model_copy(update={"imap_port": closed_port()}))
    assert down.outcome is Outcome.FAILED
    assert check_mailbox(settings).outcome is Outcome.SKIPPED


# -- the model tiers and the home channel -----------------------------------------------------------------------


def test_model_tiers_are_called_only_when_asked_and_the_call_is_settled_in_the_budget(services, openai_api, db):
    settings = services.settings.model_copy(update={"draft_model": "openai:gpt-4.1-mini",
                                                    "model_base_url": openai_api.base_url,
                                                    "model_api_key": openai_api.api_key})
    priced = build_services(settings, services.stores)
    not_asked = check_models(priced, call=False)
    assert [(v.outcome, v.line) for v in not_asked] == [
        (Outcome.SKIPPED, "draft: openai:gpt-4.1-mini, not called (use --models).")]
    openai_api.script_text("OK")
    answered = check_models(priced, call=True)
    assert [v.outcome for v in answered] == [Outcome.OK]
    assert answered[0].line.startswith("draft: openai:gpt-4.1-mini answered ($")
    with db.connection() as conn:
        calls = conn.execute("SELECT step, tier, state FROM budget_calls").fetchall()
    assert [(c["step"], c["tier"], c["state"]) for c in calls] == [("doctor", "draft", "settled")]


def test_a_model_tier_that_fails_gives_its_reservation_back(services, db):
    settings = services.settings.model_copy(update={"draft_model": "openai:gpt-4.1-mini", "model_api_key": "k",
                                                    "model_base_url": f"http://127.0.0.1:{closed_port()}/v1"})
    verdict = check_models(build_services(settings, services.stores), call=True)[0]
    assert (verdict.outcome, verdict.fix) == (Outcome.FAILED, said.MODEL_FIX)
    with db.connection() as conn:
        assert [r["state"] for r in conn.execute("SELECT state FROM budget_calls").fetchall()] == ["released"]


def test_offline_tiers_need_no_call(services):
    assert [(v.outcome, v.line) for v in check_models(services, call=True)] == [(Outcome.SKIPPED,
                                                                                said.MODELS_OFFLINE)]


@pytest.mark.parametrize(("home", "slack_token", "outcome", "line"), [
    (None, None, Outcome.SKIPPED, said.HOME_UNSET),
    ("slack:C123", "xoxb-1", Outcome.OK, said.home_works("slack:C123")),
    ("slack:C123", None, Outcome.FAILED, said.home_unconfigured("slack", "OPSOS_SLACK_BOT_TOKEN")),
    ("telegram:42", None, Outcome.FAILED, said.home_unconfigured("telegram", "OPSOS_TELEGRAM_BOT_TOKEN")),
    ("console:local", None, Outcome.OK, said.home_works("console:local")),
    ("C123", None, Outcome.FAILED, said.home_malformed("C123")),
    ("slack:", "xoxb-1", Outcome.FAILED, said.home_malformed("slack:")),
    ("discord:1", None, Outcome.FAILED, said.home_unknown("discord")),
])
def test_the_home_channel_parses_and_names_a_configured_front_end(settings, home, slack_token, outcome, line):
    verdict = check_home_channel(settings.model_copy(update={"home_channel": home, "slack_bot_token": slack_token}))
    assert (verdict.outcome, verdict.line) == (outcome, line)
