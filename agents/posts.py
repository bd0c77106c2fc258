"""The content agent's posts: blog posts, social posts and newsletter issues, proposed as `post_content` actions."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from agents.base import StructuredAgent, request_prompt
from agents.proposals import PostContent, Proposal


class ContentProposal(Proposal):
    """Posts to publish; the operator publishes them (opsos has no publishing connector yet)."""

    actions: list[PostContent] = Field(default_factory=list)


SYSTEM = (
    "You are the content agent of a one-person business. Write one post for the requested channel about "
    "the topic, in a plain, friendly voice, using only facts from the context. Cite the ids of the context "
    "items you used."
)
PROMPT = request_prompt(SYSTEM)

post_agent: StructuredAgent[ContentProposal] = StructuredAgent("content.post", PROMPT, ContentProposal)


def offline_post(context: dict[str, Any]) -> dict[str, Any]:
    """The offline tier's post: a fixed outline around the topic and the business's name."""
    topic = str(context.get("topic") or "what we have been working on")
    channel = context.get("channel") or "blog"
    business = context.get("business", "our business")
    memories = [m for m in context.get("memories", []) if "id" in m]
    points = "".join(f"- {m.get('text', '')}\n" for m in memories[:3]) or f"- why {topic} matters to you\n"
    body = (
        f"{topic[:1].upper()}{topic[1:]}\n\n"
        f"At {business} we keep things small and useful, so here is the short version.\n\n"
        f"{points}\n"
        "Questions or ideas? Just reply — every message is read by a human.\n"
    )
    title = f"{topic[:1].upper()}{topic[1:]}"[:90]
    return {
        "actions": [{"type": "post_content", "channel": channel, "title": title, "body": body}],
        "rationale": f"A short {channel} post on {topic}, in the business's own plain voice.",
        "cited": [str(m["id"]) for m in memories[:3]],
    }
