"""Forgetting a memory: asked for in chat, approved by the operator, then a tombstone and an audit event."""
from __future__ import annotations

import hashlib
from typing import Any

from memory import MemoryNotFound
from orchestrator import audit, words
from orchestrator.approvals import ApprovalRequest
from orchestrator.messages import Fact
from orchestrator.policy import Effect
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.model import Step, Workflow


def forget_memory(ctx: StepContext) -> dict[str, Any]:
    memory_id = int(ctx.intent.params["memory_id"])
    try:
        record = ctx.services.memory.get(memory_id)
    except MemoryNotFound:
        return {"memory_id": memory_id, "versions": 0, "note": "no such memory, or already forgotten"}
    what, why = words.forget_request(memory_id, record.subject, record.text)
    approval = ctx.require_approval(
        effect=Effect.FORGET,
        # Bound to the text as it reads now: an edit after the request asks again.
        action={"forget": memory_id, "text_sha256": hashlib.sha256(record.text.encode()).hexdigest()},
        ask=ApprovalRequest(what=what, why=why, facts=[Fact(label="Subject", value=record.subject),
                                                       Fact(label="Versions", value=str(record.version))]),
    )
    by = approval.decided_by if approval and approval.decided_by else ctx.intent.requested_by
    # The tombstone and its audit event in one transaction: a crash between them would leave a
    # memory forgotten with no record of who forgot it.
    with ctx.writing() as conn:
        forgotten = ctx.services.memory.forget(memory_id, by=by, conn=conn)
        audit.append(conn, actor=by, kind="memory.forgotten", at=ctx.services.now(), intent_id=ctx.intent.id,
                     run_id=ctx.run.id,
                     payload={"memory": memory_id, "by": by,
                              "tombstones": [f.model_dump(mode="json") for f in forgotten]})
    return {"memory_id": memory_id, "versions": len(forgotten)}


def _summarise(result: dict[str, Any]) -> str:
    return result.get("note") or f"memory #{result['memory_id']} forgotten ({result['versions']} versions)"


FORGET = Workflow(
    name="forget_memory",
    title="forget a memory",
    describe="redact a memory after your approval, keeping a tombstone and an audit event",
    steps=(Step("forget", Effect.FORGET, forget_memory, title="Forget the memory", summarise=_summarise),),
)
