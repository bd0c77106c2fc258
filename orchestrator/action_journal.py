"""The connectors' action journal: each outside action's claim and finish as audit events, in their transaction."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from psycopg import Connection

from connectors import ActionEvent, ActionRecord
from orchestrator import audit
from orchestrator.keys import run_step_of

INTENT_OF_RUN = "SELECT intent_id FROM runs WHERE id = %s"


class AuditJournal:
    """`connectors.ActionJournal` on the audit chain: `connector.action_started` when a key is claimed,
    `connector.action_done` / `_compensated` / `_failed` when it is finished or given back.

    Written inside the connector's own transaction, so a side effect and its event commit together, and a claim
    rolled back leaves neither. The run and intent are those of the step the key was built for, when it was.
    """

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock

    def record(self, conn: Connection, *, event: ActionEvent, record: ActionRecord, detail: str = "") -> None:
        owner = run_step_of(record.key)
        run_id, intent_id = None, None
        if owner is not None:
            row = conn.execute(INTENT_OF_RUN, (owner[0],)).fetchone()
            if row is not None:
                run_id, intent_id = owner[0], (row["intent_id"] if isinstance(row, dict) else row[0])
        payload: dict[str, object] = {"key": record.key, "connector": record.connector, "action": record.action,
                                      "attempt": record.attempts}
        if owner is not None:
            payload["step"] = owner[1]
        if event is not ActionEvent.STARTED and record.result is not None:
            payload["result"] = record.result
        if detail:
            payload["error"] = detail
        audit.append(conn, actor=f"connector:{record.connector}", kind=f"connector.action_{event.value}",
                     intent_id=intent_id, run_id=run_id, payload=payload, at=self.clock())
