"""The three renderers on the same messages: Block Kit, Telegram HTML + keyboard, console text."""
from __future__ import annotations

import html
import json
import re

import pytest

from bot.render import BlockKitRenderer, ConsoleRenderer, TelegramRenderer
from orchestrator import Action, Fact, Message, MessageKind, Section, Style
from orchestrator.words import approval_actions

APPROVAL = Message(
    kind=MessageKind.APPROVAL_REQUEST,
    title="Approval needed for run #1: Email 5 lapsed subscribers",
    text="They lapsed <30 days ago & still open mail.",
    sections=[Section(facts=[Fact(label="Estimated cost", value="$0.02")]), Section(title="Preview", text="Hi Ana,")],
    actions=approval_actions("a1b2c3d4e5"),
    run_id=1,
    approval_id="a1b2c3d4e5",
)
DECIDED = Message(kind=MessageKind.APPROVAL_DECIDED, title="Approved: Email 5 lapsed subscribers",
                  text="Approved by slack:U1 via slack at 2025-01-01 10:00 UTC.", approval_id="a1b2c3d4e5")


def test_block_kit_approval_has_a_button_per_decision_carrying_the_short_value() -> None:
    rendered = BlockKitRenderer().render(message=APPROVAL)
    [actions] = [b for b in rendered.blocks if b["type"] == "actions"]
    assert [(e["action_id"], e["value"], e.get("style")) for e in actions["elements"]] == [
        ("approve", "approve:a1b2c3d4e5", "primary"), ("reject", "reject:a1b2c3d4e5", "danger"),
        ("why", "why:a1b2c3d4e5", None)]
    assert rendered.blocks[0]["type"] == "header"
    assert rendered.text.startswith("Approval needed for run #1")
    assert "They lapsed &lt;30 days ago &amp; still open mail." in json.dumps(rendered.blocks)


def test_block_kit_decided_keeps_the_content_drops_the_buttons_and_says_who_and_when() -> None:
    renderer = BlockKitRenderer()
    original = renderer.render(message=APPROVAL).blocks
    updated = renderer.decided(original=original, message=DECIDED)
    assert not any(b["type"] == "actions" for b in updated.blocks)
    assert updated.blocks[0] == original[0]
    assert "Approved by slack:U1 via slack at 2025-01-01 10:00 UTC." in updated.blocks[-1]["elements"][0]["text"]
    alone = renderer.decided(original=[], message=DECIDED)
    assert alone.blocks[-1]["type"] == "context" and "actions" not in json.dumps(alone.blocks)


def test_block_kit_stays_within_slack_limits_for_a_huge_message() -> None:
    huge = Message(kind=MessageKind.REPORT, title="T" * 200, text="word " * 5000,
                   sections=[Section(title=f"s{i}", facts=[Fact(label=f"f{j}", value="v" * 3000) for j in range(25)])
                             for i in range(10)],
                   actions=[Action(label="Approve", value="approve:a1b2c3d4e5")])
    blocks = BlockKitRenderer().render(message=huge).blocks
    assert len(blocks) <= 50 and blocks[-1]["type"] == "actions"
    for block in blocks:
        assert len(block.get("text", {}).get("text", "")) <= 3000
        assert len(block.get("fields", [])) <= 10
        assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))


def test_telegram_approval_is_escaped_html_with_an_inline_keyboard_of_short_values() -> None:
    rendered = TelegramRenderer().render(message=APPROVAL)
    [text] = rendered.parts
    assert text.startswith("<b>✋ Approval needed for run #1")
    assert "They lapsed &lt;30 days ago &amp; still open mail." in text
    assert "• <b>Estimated cost</b>: $0.02" in text
    assert rendered.keyboard is not None
    [row] = rendered.keyboard.inline_keyboard
    assert [(b.text, b.callback_data) for b in row] == [
        ("Approve", "approve:a1b2c3d4e5"), ("Reject", "reject:a1b2c3d4e5"), ("Why?", "why:a1b2c3d4e5")]
    assert all(len(b.callback_data.encode()) <= 64 for b in row)


def test_telegram_long_text_splits_within_4096_without_cutting_an_entity_or_a_tag() -> None:
    text = "\n".join(["Tom & Jerry <3 \"quotes\" " * 30] * 20) + "\n" + "&" * 5000
    message = Message(kind=MessageKind.REPORT, title="Report " * 1000, text=text,
                      sections=[Section(facts=[Fact(label="Big", value="<x>" * 3000)])])
    parts = TelegramRenderer().render(message=message).parts
    assert len(parts) > 3 and all(0 < len(p) <= 4096 for p in parts)
    for part in parts:
        assert part.count("<b>") == part.count("</b>")
        assert not re.search(r"&[a-z]*$", part)  # no entity cut at the end of a part
        html.unescape(re.sub(r"</?b>", "", part))
    joined = "".join(html.unescape(re.sub(r"</?b>", "", p)).replace("\n", "") for p in parts)
    assert joined.count("&") == text.count("&") and joined.count("<x>") == 3000


def test_telegram_refuses_a_button_value_over_64_bytes() -> None:
    message = Message(kind=MessageKind.NOTICE, title="x", actions=[Action(label="Go", value="é" * 40)])
    with pytest.raises(ValueError, match="64 bytes"):
        TelegramRenderer().render(message=message)


def test_console_renderer_writes_buttons_as_words() -> None:
    text = ConsoleRenderer().render(message=APPROVAL)
    assert text.startswith("opsos ▸ Approval needed for run #1")
    assert "[approve]   [reject]   [why]   (type the word)" in text
    assert "        • Estimated cost: $0.02" in text


@pytest.mark.parametrize("kind", list(MessageKind))
def test_every_kind_renders_on_every_channel(kind: MessageKind) -> None:
    message = Message(kind=kind, title="Title", text="Body", sections=[Section(title="S", text="t")],
                      actions=[Action(label="Approve", value="approve:a1b2c3d4e5", style=Style.PRIMARY)])
    assert BlockKitRenderer().render(message=message).blocks
    assert TelegramRenderer().render(message=message).parts
    assert ConsoleRenderer().render(message=message).startswith("opsos ▸ Title")
