"""What `opsos doctor` (and `opsos serve` at start) says about each part of the set-up: a line and how to fix it."""
from __future__ import annotations

MARKS = {"ok": "✓", "warning": "!", "failed": "✗", "skipped": "–"}

# -- the database ------------------------------------------------------------------------------------------------
DATABASE_FIX = "Check DATABASE_URL (host, port, user, password, database) and that PostgreSQL is running."
EMBEDDED_DATABASE_FIX = ("The embedded PostgreSQL (pgserver) did not start: check that the data folder "
                         "(OPSOS_DATA_DIR) is writable and has free space.")
VECTOR_FIX = "As the database's admin user run: CREATE EXTENSION vector; (managed services call it pgvector)."
MIGRATE_FIX = "Run `opsos db migrate` (as the owner role on a managed database); `opsos serve` also migrates at start."
SCHEMA_TOO_NEW_FIX = "Upgrade this opsos to the version that migrated the database; a downgrade is not supported."
RIGHTS_FIX = ("Connect the web, worker and scheduler as an app role that owns nothing: `opsos db roles --app-role "
              "opsos_app --owner-role opsos_owner` (see the README, \"owner and app roles\").")


def database_reached(server: str, *, embedded: bool) -> str:
    return f"PostgreSQL {server} answers ({'embedded, in the data folder' if embedded else 'DATABASE_URL'})."


def database_unreachable(said: str) -> str:
    return f"PostgreSQL cannot be reached: {said}."


def vector_present(version: str) -> str:
    return f"The vector extension {version} is installed (memory recall needs it)."


VECTOR_MISSING = "The vector extension is not installed in this database: memory recall cannot work."


def schema_current(migrations: int) -> str:
    return f"The schema is current ({migrations} migrations applied)."


def schema_pending(pending: int) -> str:
    return f"{pending} migration{'' if pending == 1 else 's'} not applied yet."


def schema_too_new(said: str) -> str:
    return f"{said[0].upper()}{said[1:]}."


RIGHTS_EMBEDDED = ("Note: the embedded database runs as a superuser, who could change the audit log; the signed "
                   "anchors are what detect that there.")


def rights_can_rewrite(role: str, how: str) -> str:
    return f"The role {role} {how}: it could rewrite the audit log's history."


def rights_append_only(role: str) -> str:
    return f"The role {role} may only read and append to the audit log."


# -- Redis ----------------------------------------------------------------------------------------------------------
REDIS_FIX = "Check REDIS_URL and that Redis is running (with no REDIS_URL the embedded one starts by itself)."


def redis_answers(server: str) -> str:
    return f"Redis {server} answers PING."


def redis_unreachable(said: str) -> str:
    return f"Redis cannot be reached: {said}."


# -- Slack ---------------------------------------------------------------------------------------------------------
SLACK_UNSET = "Not configured (OPSOS_SLACK_BOT_TOKEN is not set)."
SLACK_TOKEN_FIX = ("Copy the Bot User OAuth Token (xoxb-…) from your Slack app's OAuth & Permissions page into "
                   "OPSOS_SLACK_BOT_TOKEN (reinstall the app if it was revoked).")
SLACK_REACH_FIX = "Check this machine's network (or OPSOS_SLACK_API_URL)."
SIGNING_SECRET_MISSING = "OPSOS_SLACK_SIGNING_SECRET is not set: HTTP mode cannot verify Slack's requests."
SIGNING_SECRET_FIX = ("Copy the Signing Secret from your Slack app's Basic Information page into "
                      "OPSOS_SLACK_SIGNING_SECRET.")
SIGNING_SECRET_SET = "The signing secret is set (HTTP mode, /slack/events)."
APP_TOKEN_MISSING = "OPSOS_SLACK_APP_TOKEN is not set: Socket Mode needs the app-level token (xapp-…)."
APP_TOKEN_FIX = ("Make an app-level token with the connections:write scope on your Slack app's Basic Information page "
                 "and put it in OPSOS_SLACK_APP_TOKEN.")
APP_TOKEN_WORKS = "The app-level token may open a Socket Mode connection."


def slack_token_works(team: str, user: str) -> str:
    return f"The bot token works (workspace {team}, bot @{user})."


def slack_failed(said: str) -> str:
    return f"{said}."


# -- Telegram ------------------------------------------------------------------------------------------------------
TELEGRAM_UNSET = "Not configured (OPSOS_TELEGRAM_BOT_TOKEN is not set)."
TELEGRAM_TOKEN_FIX = "Copy the bot's token from @BotFather (/mybots → API Token) into OPSOS_TELEGRAM_BOT_TOKEN."
TELEGRAM_REACH_FIX = "Check this machine's network (or OPSOS_TELEGRAM_API_URL)."
WEBHOOK_SECRET_MISSING = "OPSOS_TELEGRAM_WEBHOOK_SECRET is not set: webhook mode cannot tell Telegram's posts apart."
WEBHOOK_SECRET_FIX = "Set OPSOS_TELEGRAM_WEBHOOK_SECRET to a random string (e.g. `openssl rand -hex 32`)."
WEBHOOK_URL_FIX = ("`opsos serve` registers OPSOS_TELEGRAM_WEBHOOK_URL when it starts; if it runs already, another "
                   "server took the webhook over: give each bot token one server.")
TELEGRAM_POLLING = "Polling mode: opsos asks Telegram for updates, no webhook needed."


def telegram_token_works(username: str) -> str:
    return f"The bot token works (@{username})."


def telegram_failed(said: str) -> str:
    return f"{said}."


def webhook_matches(url: str) -> str:
    return f"Telegram posts updates to {url}."


def webhook_differs(registered: str, wanted: str) -> str:
    where = registered or "nowhere (no webhook is registered)"
    return f"Telegram posts updates to {where}, not to OPSOS_TELEGRAM_WEBHOOK_URL {wanted}."


WEBHOOK_UNREGISTERED = "Webhook mode without OPSOS_TELEGRAM_WEBHOOK_URL: register the webhook yourself."

# -- Stripe --------------------------------------------------------------------------------------------------------
STRIPE_SECRET_UNSET = "Not configured (OPSOS_STRIPE_WEBHOOK_SECRET is not set: /stripe/webhook is not served)."
STRIPE_SECRET_SHAPE = "OPSOS_STRIPE_WEBHOOK_SECRET does not start with whsec_: it is not a webhook signing secret."
STRIPE_SECRET_FIX = ("Copy the endpoint's Signing secret (whsec_…) from Stripe's dashboard, Developers → Webhooks → "
                     "your endpoint; not the API key.")
STRIPE_SECRET_SET = "The webhook signing secret has the right shape (whsec_…)."

# -- the mailbox ---------------------------------------------------------------------------------------------------
IMAP_UNSET = "Not configured (OPSOS_IMAP_HOST is not set)."
IMAP_FIX = ("Check OPSOS_IMAP_HOST, OPSOS_IMAP_PORT, OPSOS_IMAP_SSL, OPSOS_IMAP_USER and OPSOS_IMAP_PASSWORD (many "
            "providers want an app password) and that OPSOS_IMAP_FOLDER exists.")


def imap_works(user: str, folder: str, messages: int) -> str:
    return f"Logged in as {user}; {folder} opens read-only (next UID {messages})."


def imap_failed(said: str) -> str:
    return f"The mailbox cannot be read: {said}."


# -- the model tiers -----------------------------------------------------------------------------------------------
MODELS_OFFLINE = "Every tier is offline (no model is called, nothing is paid)."
MODEL_FIX = ("Check the tier's model string, OPSOS_MODEL_BASE_URL / OPSOS_MODEL_API_KEY (or the tier's own) and that "
             "the provider's package is installed.")
MODEL_BUDGET_FIX = "Raise the cap (OPSOS_BUDGET_DAILY_USD, OPSOS_BUDGET_MONTHLY_USD or the tier's) or wait for it."
MODEL_NEEDS_DATABASE = "Not called: the budget ledger is in the database, which cannot be reached."


def model_not_called(tier: str, model: str) -> str:
    return f"{tier}: {model}, not called (use --models)."


def model_answered(tier: str, model: str, cost_usd: float) -> str:
    return f"{tier}: {model} answered (${cost_usd:.4f}, paid from the budget)."


def model_failed(tier: str, model: str, said: str) -> str:
    return f"{tier}: {model} failed: {said}."


def model_over_budget(tier: str, model: str) -> str:
    return f"{tier}: {model} not called: a budget cap has no room left."


# -- the home channel ----------------------------------------------------------------------------------------------
HOME_UNSET = "Not set: digests and alerts go to the conversation the operator last asked from."
HOME_FIX = "Set OPSOS_HOME_CHANNEL to channel:conversation, e.g. slack:C0123456789 or telegram:123456789."


def home_malformed(value: str) -> str:
    return f"OPSOS_HOME_CHANNEL={value} is not channel:conversation."


def home_unconfigured(channel: str, needs: str) -> str:
    return f"OPSOS_HOME_CHANNEL names {channel}, which is not configured ({needs} is not set)."


def home_unknown(channel: str) -> str:
    return f"OPSOS_HOME_CHANNEL names {channel}, which is no front end of opsos (slack, telegram, console)."


def home_works(value: str) -> str:
    return f"Digests and alerts go to {value}."


# -- the clock ------------------------------------------------------------------------------------------------------
CLOCK_FIX = ("Turn on time synchronisation (systemd-timesyncd, chrony or ntpd) on this machine and the servers: "
             "Stripe refuses webhooks signed more than 300 s off and approvals expire by the clock.")
CLOCK_NEEDS_STORES = "Not compared: neither PostgreSQL nor Redis could be reached."


def clock_agrees(skews: dict[str, float]) -> str:
    return "This machine's clock agrees with " + _skews(skews) + "."


def clock_skewed(skews: dict[str, float]) -> str:
    return "This machine's clock is off from " + _skews(skews) + "."


def _skews(skews: dict[str, float]) -> str:
    return " and ".join(f"{server}'s ({seconds:+.1f} s)" for server, seconds in skews.items())


# -- the summary ---------------------------------------------------------------------------------------------------
def verdict_line(mark: str, part: str, line: str, fix: str) -> str:
    return f"{mark} {part}: {line}" + (f"\n    fix: {fix}" if fix else "")


def summary(failed: int, warned: int) -> str:
    if failed:
        return f"{failed} part{'' if failed == 1 else 's'} must be fixed."
    if warned:
        return f"Everything configured works ({warned} warning{'' if warned == 1 else 's'})."
    return "Everything configured works."
