"""The Block Kit renderer: a Message as Slack blocks plus the fallback text notifications show."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator import Message, MessageKind, Style

# Slack's limits (https://api.slack.com/reference/block-kit/blocks): past them chat.postMessage fails.
MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_BUTTON_LABEL = 75
MAX_FALLBACK = 3000
ACTIONS_BLOCK_ID = "opsos_actions"
# Big kinds open with a header; short replies stay one bold line, as a person would write them.
_HEADED = {MessageKind.APPROVAL_REQUEST, MessageKind.REPORT, MessageKind.STATUS, MessageKind.ALERT,
           MessageKind.HELP, MessageKind.EXPLANATION}
_EMOJI = {MessageKind.ALERT: ":warning: ", MessageKind.APPROVAL_REQUEST: ":raised_hand: "}


@dataclass
class SlackMessage:
    """What chat.postMessage / chat.update / a slash-command ack take: `text` is the notification fallback."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def escape(text: str) -> str:
    """Slack's three control characters; everything else in mrkdwn is shown as typed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _chunks(text: str, limit: int) -> list[str]:
    # Split on line breaks where possible, so a long preview reads as paragraphs, not cut words.
    chunks: list[str] = []
    current = ""
    for line in text.splitlines() or [""]:
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        chunks.append(current)
    return chunks


def _section(mrkdwn: str) -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": chunk}}
            for chunk in _chunks(mrkdwn, MAX_SECTION_TEXT)]


def action_id(value: str) -> str:
    """The decision a button stands for (`approve`, `reject`, `why`): what bolt listeners match on."""
    return value.split(":", 1)[0][:255]


class BlockKitRenderer:
    def render(self, *, message: Message) -> SlackMessage:
        blocks: list[dict[str, Any]] = []
        title = _EMOJI.get(message.kind, "") + message.title
        if message.kind in _HEADED and len(title) <= MAX_HEADER:
            blocks.append({"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}})
        else:
            blocks += _section(f"*{escape(title)}*")
        if message.kind is MessageKind.APPROVAL_DECIDED:
            # The decision line is the point of this message: small, grey, under the title, like Slack's own.
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(message.text)}]})
        elif message.text:
            blocks += _section(escape(message.text))
        for section in message.sections:
            heading = f"*{escape(section.title)}*" if section.title else ""
            body = "\n".join(part for part in (heading, escape(section.text)) if part)
            if body:
                blocks += _section(body)
            for start in range(0, len(section.facts), MAX_FIELDS):
                fields = [
                    {"type": "mrkdwn", "text": _clip(f"*{escape(fact.label)}*\n{escape(fact.value)}", MAX_FIELD_TEXT)}
                    for fact in section.facts[start:start + MAX_FIELDS]
                ]
                blocks.append({"type": "section", "fields": fields})
        actions = self.buttons(message)
        if len(blocks) + len(actions) > MAX_BLOCKS:
            # The buttons matter more than the tail of a long preview: cut the preview, keep them.
            keep = MAX_BLOCKS - len(actions) - 1
            blocks = [*blocks[:keep], {"type": "context", "elements": [
                {"type": "mrkdwn", "text": "… (shortened for Slack; the full text is in `status`)"}]}]
        # The fallback is mrkdwn too (notifications, screen readers): escaped like the blocks, or a customer name
        # such as `<!channel>` would ping everyone and `<https://evil|Approve>` would show a forged link.
        return SlackMessage(text=_clip(escape(message.plain_text()), MAX_FALLBACK), blocks=blocks + actions)

    def buttons(self, message: Message) -> list[dict[str, Any]]:
        if not message.actions:
            return []
        elements = []
        for action in message.actions:
            button: dict[str, Any] = {
                "type": "button",
                "action_id": action_id(action.value),
                "text": {"type": "plain_text", "text": _clip(action.label, MAX_BUTTON_LABEL)},
                "value": action.value,
            }
            if action.style is not Style.DEFAULT:
                button["style"] = action.style.value
            elements.append(button)
        return [{"type": "actions", "block_id": ACTIONS_BLOCK_ID, "elements": elements}]

    def decided(self, *, original: list[dict[str, Any]], message: Message) -> SlackMessage:
        """The approval message as it reads after the decision: the same content, no buttons, who and when below.

        Falls back to the decision alone when the original blocks are unknown (e.g. a click on a stale copy).
        """
        outcome = self.render(message=message)
        kept = [block for block in original if block.get("type") != "actions"]
        if not kept:
            return outcome
        context = {"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"*{escape(message.title)}* — {escape(message.text)}"}]}
        return SlackMessage(text=outcome.text, blocks=[*kept[: MAX_BLOCKS - 2], {"type": "divider"}, context])
