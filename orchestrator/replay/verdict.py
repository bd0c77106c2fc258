"""Replay checked against the tables: a run's events and rows read in one snapshot, every disagreement named,
and whether the audit chain holds for the events the replay used."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from psycopg import Connection
from psycopg_pool import ConnectionPool

from orchestrator import anchors as anchoring
from orchestrator import audit
from orchestrator.agent_calls import AgentCall
from orchestrator.approvals import Approval
from orchestrator.errors import NotFound
from orchestrator.replay.folding import fold
from orchestrator.replay.model import Disagreement, ReplayReport, RunReplay
from orchestrator.runs import Run
from orchestrator.steps import StepRecord

RUN = "SELECT * FROM runs WHERE id = %s"
STEPS_OF_RUN = "SELECT * FROM steps WHERE run_id = %s ORDER BY position, name"
APPROVALS_OF_RUN = "SELECT * FROM approvals WHERE run_id = %s ORDER BY requested_at, id"
CALLS_OF_RUN = "SELECT * FROM agent_calls WHERE run_id = %s ORDER BY id"
SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
# agent_calls.cost_usd is numeric(12, 6): the event keeps the unrounded float the column was given.
_COST_TOLERANCE = 1e-6
# How many of the latest events a chat reply shows; `opsos replay` prints them all.


def _text(value: Any) -> str:
    # Enum members and the plain strings of an unvalidated row compare alike: StrEnum's str() is its value.
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


R = TypeVar("R")
L = TypeVar("L")


class _Differ:
    def __init__(self) -> None:
        self.found: list[Disagreement] = []

    def field(self, subject: str, name: str, table: Any, log: Any) -> None:
        if _text(table) != _text(log):
            self.found.append(Disagreement(subject=subject, field=name, table=_text(table), log=_text(log)))

    def missing(self, subject: str, *, in_table: bool) -> None:
        self.found.append(Disagreement(subject=subject, field="record",
                                       table="present" if in_table else "no row",
                                       log="no event" if in_table else "present"))

    def pairs(self, kind: str, rows: dict[Any, R], logged: dict[Any, L]) -> Iterator[tuple[str, R, L]]:
        """Each row with its replayed record, table order first; one present on one side only is reported."""
        for key in [*rows, *(k for k in logged if k not in rows)]:
            row, record, subject = rows.get(key), logged.get(key), f"{kind} {key}"
            if row is None or record is None:
                self.missing(subject, in_table=row is not None)
                continue
            yield subject, row, record


def compare(replay: RunReplay, *, run: Run | None, step_rows: Iterable[StepRecord],
            approval_rows: Iterable[Approval], call_rows: Iterable[AgentCall]) -> list[Disagreement]:
    """Every field where the rows and the replay differ, run first, then steps, approvals and calls."""
    differ = _Differ()
    subject = f"run #{replay.run_id}"
    if run is None:
        if replay.timeline:
            differ.missing(subject, in_table=False)
    elif replay.state is None:
        differ.missing(subject, in_table=True)
    else:
        differ.field(subject, "workflow", run.workflow, replay.workflow)
        differ.field(subject, "state", run.state, replay.state)
        differ.field(subject, "paused_from", run.paused_from, replay.paused_from)
        differ.field(subject, "reason", run.reason, replay.reason)
        differ.field(subject, "finished", run.finished_at is not None, replay.finished)

    for subject, row, step in differ.pairs("step", {r.name: r for r in step_rows},
                                           {st.name: st for st in replay.steps}):
        differ.field(subject, "state", row.state, step.state)
        differ.field(subject, "attempts", row.attempts, step.attempts)

    for subject, row, approval in differ.pairs("approval", {r.id: r for r in approval_rows},
                                               {a.id: a for a in replay.approvals}):
        differ.field(subject, "state", row.state, approval.state)
        differ.field(subject, "step", row.step, approval.step)
        differ.field(subject, "action digest", row.action_digest, approval.digest)
        differ.field(subject, "decided by", row.decided_by, approval.decided_by)
        differ.field(subject, "decided via", row.decided_via, approval.decided_via)

    for subject, row, call in differ.pairs("agent call", {r.id: r for r in call_rows},
                                           {c.id: c for c in replay.calls}):
        differ.field(subject, "step", row.step, call.step)
        differ.field(subject, "tier", row.tier, call.tier)
        differ.field(subject, "model", row.model, call.model)
        differ.field(subject, "tokens", row.input_tokens + row.output_tokens, call.tokens)
        if abs(float(row.cost_usd) - call.cost_usd) > _COST_TOLERANCE:
            differ.field(subject, "cost", f"${float(row.cost_usd):.6f}", f"${call.cost_usd:.6f}")
    return differ.found


# -- reading the record (I/O) -----------------------------------------------------------------------

def check(conn: Connection, run_id: int, *, anchors: anchoring.AnchorBook) -> ReplayReport:
    """Replay run `run_id` from its audit events and compare it with its rows. Raises NotFound if neither exists.

    Reads in the caller's transaction (`snapshot` gives it one view of both). Rows are read without
    validation, so a row changed behind the log's back to a state no code writes is reported, not refused.
    The chain is checked against its anchors (`anchors.verify`): only the events after the newest anchor are
    re-hashed, so a replay costs the same however long the log has grown.
    """
    events = audit.events(conn, run_id=run_id)
    row = conn.execute(RUN, (run_id,)).fetchone()
    if row is None and not events:
        raise NotFound("run", run_id)
    replay = fold(events, run_id=run_id)
    found = compare(
        replay,
        run=Run.model_construct(**row) if row else None,
        step_rows=[StepRecord.model_construct(**r) for r in conn.execute(STEPS_OF_RUN, (run_id,))],
        approval_rows=[Approval.model_construct(**r) for r in conn.execute(APPROVALS_OF_RUN, (run_id,))],
        call_rows=[AgentCall.model_construct(**r) for r in conn.execute(CALLS_OF_RUN, (run_id,))],
    )
    chain = anchoring.verify(conn, anchors)
    last = replay.last_event_id
    holds = chain.ok or last is None or (chain.first_broken_id is not None and chain.first_broken_id > last)
    return ReplayReport(replay=replay, disagreements=found, chain=chain, chain_holds=holds)


def snapshot(pool: ConnectionPool, run_id: int, *, anchors: anchoring.AnchorBook) -> ReplayReport:
    """`check` in one REPEATABLE READ transaction: a transition committed while it reads cannot show up in the
    rows but not the events (or the reverse) and pass for a disagreement. Raises NotFound."""
    with pool.connection() as conn, conn.transaction():
        conn.execute(SNAPSHOT)
        return check(conn, run_id, anchors=anchors)
