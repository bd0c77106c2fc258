"""`opsos workflows list|check FILE|show NAME`."""
from __future__ import annotations

from bot.cli import main


def test_check_names_the_problem_and_fails(tmp_path, capsys) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\ntitle = "bad"\n[[step]]\nname = "pay"\ndo = "charge"\nunattended = true\n'
                    'irreversible = "x"\nwith = { customer = "c-1", amount_cents = 5 }\ntier = "cheap"\n')
    assert main(["workflows", "check", str(path)]) == 1
    assert capsys.readouterr().err.strip() == f"{path}: step “pay”: tier: Input should be 'draft' or 'reason'"


def test_list_and_show_name_the_shipped_file(capsys, monkeypatch) -> None:
    monkeypatch.delenv("OPSOS_WORKFLOWS_DIR", raising=False)
    assert main(["workflows", "list"]) == 0
    assert "• order_fulfilment (orchestrator/workflows/files/order_fulfilment.toml)" in capsys.readouterr().out
    assert main(["workflows", "show", "order_fulfilment"]) == 0
    shown = capsys.readouterr().out
    assert "3. welcome: Send the welcome email (send_email, email.customers; irreversible: a sent email cannot be " \
           "unsent)" in shown
    assert main(["workflows", "show", "nothing"]) == 1
