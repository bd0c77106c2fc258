"""`opsos memory import|recall|stats` end to end, against the test servers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main

LINES = [
    {"text": "Ana Kowalski asked for invoices as PDF.", "subject": "customer:ana",
     "kind": "customer_interaction", "at": "2024-03-03T10:00:00+00:00", "ref": "zd-1"},
    {"text": "Bob from Nordwind wants delivery before Friday.", "subject": "customer:bob",
     "kind": "customer_interaction", "at": "2024-03-04T10:00:00+00:00", "ref": "zd-2"},
    {"subject": "customer:ana", "kind": "fact", "ref": "zd-3"},  # no text: a bad line
    {"text": "Ana Kowalski's invoice INV-2041 was paid on the 3rd.", "subject": "customer:ana",
     "kind": "outcome", "at": "2024-03-05T10:00:00+00:00", "ref": "zd-4"},
]


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch, database_url: str, redis_url: str, db, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OPSOS_DATA_DIR", str(tmp_path / "data"))


def test_import_reports_the_bad_line_by_number_and_still_imports_the_good_ones(
    servers: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSONL file with one bad line: the three good lines go in, the bad one is named by line number,
    and recall then returns them with their refs, as JSON."""
    path = tmp_path / "crm.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in LINES) + "not json at all\n")

    code = main(["memory", "import", str(path), "--no-progress"])
    out, err = capsys.readouterr()

    assert code == 1
    assert "imported 3 of 5 lines" in out and "2 bad" in out
    assert "line 3: text:" in err and "line 5:" in err

    assert main(["memory", "recall", "INV-2041", "--json", "--k", "3"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found[0]["ref"] == "zd-4" and found[0]["source"] == "crm.jsonl"
    assert found[0]["created_at"].startswith("2024-03-05")

    assert main(["memory", "recall", "delivery", "--subject", "customer:bob"]) == 0
    assert "ref=zd-2" in capsys.readouterr().out

    assert main(["memory", "stats"]) == 0
    stats = capsys.readouterr().out
    assert "memories: 3 (3 current" in stats and "customer_interaction: 2" in stats


def test_a_line_that_is_not_utf8_or_holds_a_nul_is_reported_and_the_rest_goes_in(
    servers: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, one Latin-1 byte ended the whole import with a traceback, and a NUL failed its whole batch."""
    good = json.dumps(LINES[0]).encode() + b"\n"
    latin1 = b'{"text": "Fran\xe7ois asked for a refund", "subject": "customer:francois"}\n'
    nul = json.dumps({"text": "bad\u0000text", "subject": "customer:ana"}).encode() + b"\n"
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(good + latin1 + nul + json.dumps(LINES[1]).encode() + b"\n")

    code = main(["memory", "import", str(path), "--no-progress"])
    out, err = capsys.readouterr()

    assert code == 1
    assert "imported 2 of 4 lines" in out and "2 bad" in out
    assert "line 2: not UTF-8 (byte 0xe7" in err
    assert "line 3: a NUL character" in err
