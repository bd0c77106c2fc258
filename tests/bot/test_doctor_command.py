"""`opsos doctor` and `opsos serve`'s start-up checks through the real command line, on the test servers and the
Slack stand-in: the exit code, and that serve refuses to start on a bad Slack token in the doctor's words."""
from __future__ import annotations

import pytest

from bot.cli import main
from orchestrator.words import doctor as said
from tests.standins.fixtures import SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET


@pytest.fixture
def environment(monkeypatch, database_url, redis_url, tmp_path, slack_api, db, redis):
    monkeypatch.chdir(tmp_path)  # no operator's .env is read
    for name, value in {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "OPSOS_DATA_DIR": str(tmp_path / "d"),
                        "OPSOS_SLACK_BOT_TOKEN": SLACK_BOT_TOKEN, "OPSOS_SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
                        "OPSOS_SLACK_API_URL": slack_api.api_url}.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_doctor_exits_0_when_everything_configured_works(environment, capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "✓ slack: The bot token works" in out
    assert "– telegram: " + said.TELEGRAM_UNSET in out
    # The test database's role is a superuser on a "managed" URL: a warning, which does not fail the exit code.
    assert "! audit rights: " in out and out.rstrip().endswith("works (1 warning).")


def test_doctor_exits_1_and_says_the_fix_on_a_refused_slack_token(environment, capsys):
    environment.setenv("OPSOS_SLACK_BOT_TOKEN", "xoxb-wrong")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "✗ slack: Slack refused the token (invalid_auth)." in out
    assert f"fix: {said.SLACK_TOKEN_FIX}" in out and "1 part must be fixed." in out


def test_serve_refuses_to_start_on_a_refused_slack_token_with_the_doctors_words(environment, capsys):
    environment.setenv("OPSOS_SLACK_BOT_TOKEN", "xoxb-wrong")
    assert main(["serve", "--host", "127.0.0.1", "--port", "0"]) == 2
    out = capsys.readouterr().out
    assert "opsos serve: ✗ slack: Slack refused the token (invalid_auth)." in out
    assert said.SLACK_TOKEN_FIX in out
    # The payments line is said once, by the doctor's round.
    assert out.count("sandbox") == 1
