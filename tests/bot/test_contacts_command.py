"""`opsos contacts import`: the command as the operator runs it, on the test servers."""
from pathlib import Path

import pytest

from bot.cli import main
from tests.standins.stripe_api import API_KEY


@pytest.fixture
def env(monkeypatch, database_url, redis_url, tmp_path, db):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OPSOS_DATA_DIR", str(tmp_path / "data"))


def people(tmp_path: Path, text: str) -> str:
    path = tmp_path / "people.csv"
    path.write_text(text)
    return str(path)


def test_import_prints_bad_lines_and_the_summary_then_a_second_import_adds_nothing(env, tmp_path, capsys, db):
    path = people(tmp_path, "E-mail,Full name,MRR,Company\nana@example.com,Ana Souza,12,Souza Studio\n"
                            "ben@example.com,Ben,lots,\n")
    assert main(["contacts", "import", path, "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert "line 3: monthly amount “lots” is not an amount like 49 or 1,200.50" in err
    assert "columns: E-mail → email, Full name → name, MRR → monthly amount, Company → attribute" in out
    assert "contacts from people.csv: 1 new, 0 updated, 0 unchanged, 1 skipped" in out
    assert main(["contacts", "import", people(tmp_path, "email,name\nana@example.com,Ana Souza\n"),
                 "--no-progress"]) == 0
    assert "0 new, 0 updated, 1 unchanged, 0 skipped" in capsys.readouterr().out
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM crm_contacts").fetchone()["n"] == 1


def test_an_empty_file_is_refused_with_what_a_header_needs(env, tmp_path, capsys):
    assert main(["contacts", "import", people(tmp_path, ""), "--no-progress"]) == 2
    assert "the file is empty: the first line must be a header row" in capsys.readouterr().err


def test_sync_stripe_prints_progress_and_the_summary_then_a_second_sync_is_unchanged(env, monkeypatch, stripe_api,
                                                                                     capsys, db):
    monkeypatch.setenv("OPSOS_PAYMENTS", "stripe")
    monkeypatch.setenv("OPSOS_STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("OPSOS_STRIPE_API_BASE", stripe_api.url)
    stripe_api.add_customer("cus_ana", email="ana@example.com", name="Ana Souza")
    stripe_api.add_customer("cus_nomail", email="", name="Walk-in")
    stripe_api.add_subscription("sub_ana", customer="cus_ana", amount_cents=2900)
    assert main(["contacts", "sync", "stripe"]) == 0
    out, err = capsys.readouterr()
    assert "page 1: 1 new, 0 updated, 0 unchanged so far" in err
    assert "contacts from Stripe: 1 new, 0 updated, 0 unchanged, 1 skipped (no email address)" in out
    assert main(["contacts", "sync", "stripe", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "0 new, 0 updated, 1 unchanged" in out and "page" not in err


def test_sync_stripe_on_the_sandbox_says_how_to_switch_to_stripe(env, capsys):
    assert main(["contacts", "sync", "stripe"]) == 2
    assert "set OPSOS_PAYMENTS=stripe" in capsys.readouterr().err
