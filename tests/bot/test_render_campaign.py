"""The win-back ask for a large audience stays within Slack's and Telegram's limits: one message, its buttons kept."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.render import BlockKitRenderer, TelegramRenderer
from bot.render.blockkit import MAX_FIELD_TEXT, MAX_HEADER, MAX_SECTION_TEXT
from bot.render.telegram import MAX_TEXT
from orchestrator import words
from orchestrator.approvals import Approval, ApprovalState
from orchestrator.intents import Intent
from orchestrator.policy import Risk

NOW = datetime(2026, 3, 10, 9, tzinfo=UTC)
INTENT = Intent(id=1, created_at=NOW, requested_by="slack:U1", channel="slack", conversation="slack:C1",
                request="grow MRR: launch a win-back campaign to lapsed subscribers", kind="winback", params={},
                budget_usd=5.0, deadline=NOW + timedelta(days=7), risk=Risk.NORMAL, dedupe_key=None)


def campaign_ask(subscribers: int):
    ask = words.campaign_request(
        intent=INTENT, offer="30% off for 3 months", rationale="Most left over price.", subject="We miss you, Ana",
        preview="Hi Ana,\n\n" + "We would love to have you back. " * 30, sender="hello@example.com",
        recipients=[(f"Subscriber {i:03} Longname", f"subscriber{i:03}@example.com") for i in range(subscribers)],
        charges=[(f"Subscriber {i:03} Longname", 840) for i in range(subscribers)], attempts=3)
    approval = Approval(id="a1b2c3d4e5", run_id=1, step="send_emails", action_digest="d" * 64, request=ask,
                        state=ApprovalState.PENDING, requested_at=NOW, expires_at=NOW + timedelta(hours=24))
    return words.approval_request(approval, INTENT)


def test_a_campaign_for_300_subscribers_names_8_and_counts_the_rest_within_the_limits() -> None:
    message = campaign_ask(300)
    facts = {f.label: f.value for s in message.sections for f in s.facts}
    assert facts["Then charges"].startswith("300 renewals, $2,520.00 in total: Subscriber 000 Longname $8.40")
    assert facts["Then charges"].endswith(", and 292 more")
    assert facts["Recipients"].endswith(", and 292 more")

    slack = BlockKitRenderer().render(message=message)
    assert slack.blocks[0]["type"] == "header" and len(slack.blocks[0]["text"]["text"]) <= MAX_HEADER
    assert slack.blocks[-1]["type"] == "actions"
    assert "shortened for Slack" not in json.dumps(slack.blocks)
    for block in slack.blocks:
        assert len(block.get("text", {}).get("text", "")) <= MAX_SECTION_TEXT
        assert all(len(field["text"]) <= MAX_FIELD_TEXT and "…" not in field["text"]
                   for field in block.get("fields", []))

    telegram = TelegramRenderer().render(message=message)
    [text] = telegram.parts  # one message: the buttons sit under the whole ask, charges included
    assert len(text) <= MAX_TEXT and "and 292 more" in text and telegram.keyboard is not None
