"""The content-post workflow: the content agent drafts a blog post, social post or newsletter issue for the operator."""
from __future__ import annotations

from typing import Any

from agents import ContentParams, post_agent
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.model import Workflow
from orchestrator.workflows.proposals import Scope, execute, propose, understand


def gather(ctx: StepContext) -> tuple[dict[str, Any], Scope]:
    params = ctx.results["understand"]["params"]
    return {
        "topic": params["topic"],
        "channel": params.get("channel") or "blog",
        "business": ctx.intent.params.get("business", "our business"),
    }, Scope()


def question(ctx: StepContext) -> str:
    return str(ctx.results["understand"]["params"]["topic"])


CONTENT_POST = Workflow(
    name="content_post",
    title="content post",
    describe="draft a blog post, social post or newsletter issue on a topic",
    steps=(
        understand("content_post", ContentParams, "post"),
        propose(post_agent, gather, title="Draft the post (content agent)", question=question),
        execute(frozenset({"post_content"}), title="Hand the post over", what="Publish the post"),
    ),
)
