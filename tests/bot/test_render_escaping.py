"""Text from customers and agents reaches Slack as text: no mention, no forged link, in the blocks or the fallback."""
from __future__ import annotations

import json

import pytest

from bot.render.blockkit import BlockKitRenderer
from orchestrator import Fact, Message, MessageKind, Section

HOSTILE = ["<!channel> urgent", "<https://evil.example|Approve>", "<@U0OPERATOR> says yes", "Tom & Jerry <3"]


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("kind", [MessageKind.APPROVAL_REQUEST, MessageKind.NOTICE])
def test_control_characters_are_escaped_in_blocks_and_in_the_notification_fallback(hostile, kind) -> None:
    """Proves review defect 9 is gone: the fallback `text` (what a phone notification shows) was sent raw."""
    message = Message(kind=kind, title=f"Payment failed: {hostile}", text=f"Customer wrote: {hostile}",
                      sections=[Section(facts=[Fact(label="Name", value=hostile)])])
    rendered = BlockKitRenderer().render(message=message)
    for raw in ("<!channel>", "<https://", "<@U0", " & "):
        assert raw not in rendered.text
        mrkdwn = [json.dumps(b) for b in rendered.blocks if b.get("type") != "header"]
        assert not any(raw in block for block in mrkdwn)
    assert "&lt;" in rendered.text or "&amp;" in rendered.text
