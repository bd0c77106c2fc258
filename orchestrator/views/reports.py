"""Reports: a run's final report and the operator's status view, built from the durable record."""
from __future__ import annotations

from psycopg import Connection

from orchestrator import agent_calls, approvals, audit, budget, steps, words
from orchestrator.intents import Intent
from orchestrator.messages import Fact, Message, MessageKind, Section
from orchestrator.runs import Run, RunState
from orchestrator.steps import StepState
from orchestrator.words import money
from orchestrator.workflows.model import Workflow


def run_spend(conn: Connection, run_id: int) -> tuple[int, float]:
    calls = agent_calls.for_run(conn, run_id)
    return sum(c.input_tokens + c.output_tokens for c in calls), sum(c.cost_usd for c in calls)


def run_report(conn: Connection, run: Run, intent: Intent, workflow: Workflow) -> Message:
    records = steps.records(conn, run.id)
    calls = agent_calls.for_run(conn, run.id)
    tokens, spend = run_spend(conn, run.id)
    ran: list[Fact] = []
    for step in workflow.steps:
        record = records.get(step.name)
        if record is None:
            ran.append(Fact(label=step.title or step.name, value="not run"))
            continue
        detail = step.summarise(record.result) if step.summarise and record.result is not None else ""
        if record.state is not StepState.SUCCEEDED:
            detail = record.error or record.state.value
        retries = f" after {record.attempts} attempts" if record.attempts > 1 else ""
        ran.append(Fact(label=step.title or step.name, value=f"{record.state.value}{retries}: {detail}".rstrip(": ")))
    provenance = [Fact(label="Intent", value=f"#{intent.id} “{intent.request}” from {intent.requested_by} "
                                             f"via {intent.channel}")]
    provenance += [
        Fact(label=f"Draft ({call.step})", value=f"{call.tier} tier, {call.model}, agent call #{call.id}")
        for call in calls
    ]
    for step in workflow.steps:
        for approval in approvals.for_step(conn, run.id, step.name):
            if approval.state in (approvals.ApprovalState.APPROVED, approvals.ApprovalState.REJECTED):
                provenance.append(Fact(
                    label=f"{step.name}", value=f"{approval.state.value} by {approval.decided_by} via "
                    f"{approval.decided_via} at {approval.decided_at:%H:%M} (approval {approval.id})"))
    compensations = [e for e in audit.events(conn, run_id=run.id) if e.kind in ("payment.failed", "step.compensated")]
    provenance += [
        Fact(label="Compensation", value=f"{e.payload.get('compensation') or e.payload.get('result')} "
                                         f"(audit event {e.id})")
        for e in compensations
    ]
    return Message(
        kind=MessageKind.REPORT,
        title=f"Run #{run.id} {run.state.value}: {workflow.title}",
        text=run.reason,
        sections=[
            Section(title="What ran", facts=ran),
            Section(title="What it cost", facts=[
                Fact(label="Model spend", value=f"{money(spend)} ({tokens} tokens)"),
                Fact(label="Budget", value=f"{money(spend)} of {money(intent.budget_usd)}"),
                *spend_lines(conn, run.id),
            ]),
            Section(title="Where each action came from", facts=provenance),
        ],
        run_id=run.id,
    )


def spend_lines(conn: Connection, run_id: int) -> list[Fact]:
    """The run's model spend per tier and model from the budget ledger, and every step-down it took."""
    facts = [Fact(label=f"{row['tier']} tier", value=f"{money(row['usd'])} on {row['model']} "
                                                    f"({row['tokens']} tokens, {row['calls']} calls)")
             for row in budget.run_calls(conn, run_id)]
    facts += [Fact(label="Stepped down", value=e.payload.get("note") or f"{e.payload['from']} → {e.payload['to']}")
              for e in audit.events(conn, run_id=run_id) if e.kind == "budget.stepped_down"]
    return facts


LIVE_RUNS = """
SELECT r.id, r.state, r.reason, r.workflow, i.request FROM runs r JOIN intents i ON i.id = r.intent_id
WHERE r.state NOT IN ('succeeded', 'failed', 'compensated', 'cancelled') ORDER BY r.id
"""
RECENT_FINISHED = """
SELECT r.id, r.state, r.workflow, i.request FROM runs r JOIN intents i ON i.id = r.intent_id
WHERE r.state IN ('succeeded', 'failed', 'compensated', 'cancelled') ORDER BY r.finished_at DESC NULLS LAST LIMIT 5
"""
SPEND_TODAY = """
SELECT coalesce(sum(cost_usd), 0) AS usd, coalesce(sum(input_tokens + output_tokens), 0) AS tokens
FROM agent_calls WHERE created_at >= date_trunc('day', now())
"""


def status(conn: Connection, *, now, budget_daily_usd: float) -> Message:
    live = conn.execute(LIVE_RUNS).fetchall()
    finished = conn.execute(RECENT_FINISHED).fetchall()
    waiting = approvals.pending(conn)
    spend = conn.execute(SPEND_TODAY).fetchone()
    for_budget = budget.waiting_for_budget(conn)
    live_facts = []
    for row in live:
        state = RunState(row["state"])
        note = row["reason"]
        if state is RunState.AWAITING_APPROVAL:
            expired = [a for a in waiting if a.run_id == row["id"] and a.expired(now)] or not any(
                a.run_id == row["id"] for a in waiting)
            note = "its approval expired — say “resume” to ask again" if expired else "waiting for your approval"
            if row["id"] in for_budget and not expired:
                note = words.waiting_for_budget(for_budget[row["id"]])
        live_facts.append(Fact(label=f"#{row['id']} {state.value}", value=f"{row['request'][:60]} {note}".strip()))
    return Message(
        kind=MessageKind.STATUS,
        title="Status",
        sections=[
            Section(title="Live runs", facts=live_facts, text="" if live_facts else "none"),
            Section(title="Waiting for you", facts=[
                Fact(label=a.id, value=f"run #{a.run_id}: {a.request.what}"
                     + (" (expired)" if a.expired(now) else "")) for a in waiting
            ], text="" if waiting else "nothing"),
            Section(title="Recently finished", facts=[
                Fact(label=f"#{row['id']} {row['state']}", value=row["request"][:60]) for row in finished
            ], text="" if finished else "none"),
            Section(title="Model spend today", facts=[
                Fact(label="Spent", value=f"{money(float(spend['usd']))} of {money(budget_daily_usd)} "
                                          f"({spend['tokens']} tokens)"),
            ]),
        ],
    )


def run_detail(conn: Connection, run: Run, intent: Intent, workflow: Workflow) -> Message:
    message = run_report(conn, run, intent, workflow)
    message.kind = MessageKind.STATUS
    message.title = f"Run #{run.id} is {run.state.value}: {workflow.title}"
    return message
