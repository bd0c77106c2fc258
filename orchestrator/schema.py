"""The control plane's tables, as its append-only list of migrations (position = version; see `migrations`).

Long because: the list is the schema's history in one order, and an applied migration is never moved or edited.
"""

ORCHESTRATOR_MIGRATIONS: list[str] = [
    # 1: intents, runs, steps, approvals, agent calls, the audit log and the outbox.
    """
    CREATE TABLE intents (
        id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        created_at    timestamptz NOT NULL DEFAULT now(),
        requested_by  text NOT NULL,
        channel       text NOT NULL,
        conversation  text NOT NULL,
        request       text NOT NULL,
        kind          text NOT NULL,
        params        jsonb NOT NULL DEFAULT '{}',
        budget_usd    numeric(12, 4) NOT NULL,
        deadline      timestamptz NOT NULL,
        risk          text NOT NULL DEFAULT 'normal',
        dedupe_key    text UNIQUE
    );
    CREATE TABLE runs (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        intent_id    bigint NOT NULL REFERENCES intents(id),
        workflow     text NOT NULL,
        state        text NOT NULL,
        reason       text NOT NULL DEFAULT '',
        paused_from  text,
        created_at   timestamptz NOT NULL DEFAULT now(),
        updated_at   timestamptz NOT NULL DEFAULT now(),
        finished_at  timestamptz
    );
    CREATE INDEX runs_state ON runs (state);
    CREATE TABLE steps (
        run_id           bigint NOT NULL REFERENCES runs(id),
        name             text NOT NULL,
        position         int NOT NULL,
        state            text NOT NULL,
        attempts         int NOT NULL DEFAULT 0,
        idempotency_key  text NOT NULL,
        result           jsonb,
        error            text,
        started_at       timestamptz,
        finished_at      timestamptz,
        PRIMARY KEY (run_id, name)
    );
    CREATE TABLE approvals (
        id             text PRIMARY KEY,
        run_id         bigint NOT NULL REFERENCES runs(id),
        step           text NOT NULL,
        action_digest  text NOT NULL,
        request        jsonb NOT NULL,
        state          text NOT NULL,
        requested_at   timestamptz NOT NULL,
        expires_at     timestamptz NOT NULL,
        decided_by     text,
        decided_at     timestamptz,
        decided_via    text
    );
    CREATE INDEX approvals_run_step ON approvals (run_id, step);
    CREATE TABLE agent_calls (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id         bigint NOT NULL REFERENCES runs(id),
        step           text NOT NULL,
        tier           text NOT NULL,
        model          text NOT NULL,
        prompt_hash    text NOT NULL,
        output         jsonb NOT NULL,
        input_tokens   int NOT NULL,
        output_tokens  int NOT NULL,
        cost_usd       numeric(12, 6) NOT NULL,
        created_at     timestamptz NOT NULL DEFAULT now(),
        UNIQUE (run_id, step, prompt_hash)
    );
    CREATE TABLE audit_events (
        id         bigint PRIMARY KEY,
        at         timestamptz NOT NULL,
        actor      text NOT NULL,
        kind       text NOT NULL,
        intent_id  bigint,
        run_id     bigint,
        payload    jsonb NOT NULL,
        prev_hash  text NOT NULL,
        hash       text NOT NULL
    );
    CREATE SEQUENCE audit_events_id_seq OWNED BY audit_events.id;
    CREATE INDEX audit_events_run ON audit_events (run_id);
    CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$;
    CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();
    CREATE TABLE outbox (
        id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        created_at       timestamptz NOT NULL DEFAULT now(),
        channel          text NOT NULL,
        conversation     text NOT NULL,
        intent_id        bigint,
        run_id           bigint,
        approval_id      text,
        kind             text NOT NULL,
        message          jsonb NOT NULL,
        state            text NOT NULL DEFAULT 'pending',
        attempts         int NOT NULL DEFAULT 0,
        next_attempt_at  timestamptz NOT NULL DEFAULT now(),
        delivered_at     timestamptz,
        last_error       text,
        delivery_ref     jsonb,
        dedupe_key       text UNIQUE
    );
    CREATE INDEX outbox_pending ON outbox (channel, next_attempt_at) WHERE state = 'pending';
    """,
    # 2: schedule slots (each recurring job runs once per slot), dashboard sign-in links and sessions.
    """
    CREATE TABLE schedule_slots (
        job         text NOT NULL,
        slot        timestamptz NOT NULL,
        claimed_at  timestamptz NOT NULL,
        claimed_by  text NOT NULL,
        late        boolean NOT NULL DEFAULT false,
        result      jsonb,
        PRIMARY KEY (job, slot)
    );
    CREATE TABLE dashboard_signins (
        token_hash  text PRIMARY KEY,
        identity    text NOT NULL,
        created_at  timestamptz NOT NULL,
        expires_at  timestamptz NOT NULL,
        used_at     timestamptz
    );
    CREATE TABLE dashboard_sessions (
        id_hash     text PRIMARY KEY,
        identity    text NOT NULL,
        csrf        text NOT NULL,
        created_at  timestamptz NOT NULL,
        expires_at  timestamptz NOT NULL
    );
    """,
    # 3: the budget ledger (spend per scope and period, each model call's reservation, asks to raise a cap)
    # and the sandbox books (transactions the bookkeeping workflow categorises).
    """
    CREATE TABLE budget_periods (
        scope         text NOT NULL,
        period        text NOT NULL,
        starts_on     date NOT NULL,
        raised_usd    numeric(16, 9) NOT NULL DEFAULT 0,
        reserved_usd  numeric(16, 9) NOT NULL DEFAULT 0,
        spent_usd     numeric(16, 9) NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, period, starts_on)
    );
    CREATE TABLE budget_calls (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id         bigint REFERENCES runs(id),
        step           text NOT NULL,
        tier           text NOT NULL,
        model          text NOT NULL,
        state          text NOT NULL,
        estimate_usd   numeric(16, 9) NOT NULL,
        cost_usd       numeric(16, 9),
        input_tokens   int,
        output_tokens  int,
        day            date NOT NULL,
        month          date NOT NULL,
        reserved_at    timestamptz NOT NULL DEFAULT now(),
        settled_at     timestamptz
    );
    CREATE INDEX budget_calls_run ON budget_calls (run_id);
    CREATE TABLE budget_asks (
        run_id        bigint NOT NULL REFERENCES runs(id),
        step          text NOT NULL,
        digest        text NOT NULL,
        scope         text NOT NULL,
        period        text NOT NULL,
        starts_on     date NOT NULL,
        amount_usd    numeric(16, 9) NOT NULL,
        waiting       boolean NOT NULL,
        asked_at      timestamptz NOT NULL DEFAULT now(),
        approval_id   text,
        applied_at    timestamptz,
        PRIMARY KEY (run_id, step, digest)
    );
    CREATE TABLE book_transactions (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        source          text NOT NULL,
        ref             text NOT NULL,
        at              timestamptz NOT NULL,
        amount_cents    int NOT NULL,
        currency        text NOT NULL DEFAULT 'usd',
        counterparty    text NOT NULL DEFAULT '',
        memo            text NOT NULL DEFAULT '',
        category        text,
        categorised_by  text,
        UNIQUE (source, ref)
    );
    """,
    # 4: a conversation's latest intent, read on every message the router does not place, to find
    # the question opsos asked there (see `intents.open_question`).
    """
    CREATE INDEX intents_conversation ON intents (channel, conversation, id);
    """,
    # 5: copies of approval buttons and their edits. Each row lists the approvals whose buttons it carries
    # (an approval request, a digest with several), so an approval leaving pending finds every copy; an edit
    # is a row of its own that names the copy it changes (`edit_of`). Rows queued before this version are
    # read for their buttons here, so an approval asked before the upgrade still loses its buttons after it.
    """
    ALTER TABLE outbox ADD COLUMN edit_of bigint REFERENCES outbox(id);
    ALTER TABLE outbox ADD COLUMN approval_buttons text[] NOT NULL DEFAULT '{}';
    UPDATE outbox SET approval_buttons = ARRAY(
        SELECT found.approval
        FROM (SELECT substring(button.action->>'value' FROM '^(?:approve|reject|why):(a[0-9a-f]{10})$') AS approval,
                     button.position
              FROM jsonb_array_elements(message->'actions') WITH ORDINALITY AS button(action, position)) AS found
        WHERE found.approval IS NOT NULL
        GROUP BY found.approval ORDER BY min(found.position))
    WHERE jsonb_typeof(message->'actions') = 'array' AND jsonb_array_length(message->'actions') > 0;
    CREATE INDEX outbox_approval_buttons ON outbox USING gin (approval_buttons) WHERE approval_buttons <> '{}';
    CREATE INDEX outbox_edits ON outbox (edit_of, id) WHERE edit_of IS NOT NULL;
    CREATE INDEX outbox_edits_by_approval ON outbox (approval_id) WHERE edit_of IS NOT NULL;
    CREATE INDEX approvals_pending_expiry ON approvals (expires_at) WHERE state = 'pending';
    """,
    # 6: the sandbox books move to the books connector (its migration 2 made `books_transactions`; the
    # connectors' migrations run first, in the same transaction). Ids are kept, so steps and audit events
    # that name a transaction still name the same one, and the identity goes on after the largest.
    """
    INSERT INTO books_transactions
        (id, source, ref, at, amount_cents, currency, counterparty, memo, category, categorised_by)
    OVERRIDING SYSTEM VALUE
    SELECT id, source, ref, at, amount_cents, currency, counterparty, memo, category, categorised_by
    FROM book_transactions;
    SELECT setval(pg_get_serial_sequence('books_transactions', 'id'), coalesce(max(id), 0) + 1, false)
    FROM books_transactions;
    DROP TABLE book_transactions;
    """,
    # 7: an edit row keeps how its approval ended (`ending`), not composed words: delivery words it when it
    # goes out. Older edit rows keep their composed message and no ending.
    """
    ALTER TABLE outbox ADD COLUMN ending jsonb;
    """,
    # 8: a refused try of a real sign-in link is audited once (`refused_at`); unknown tokens write nothing.
    """
    ALTER TABLE dashboard_signins ADD COLUMN refused_at timestamptz;
    """,
    # 9: outbox delivery owns each row by its lease (`lease_token`, one per delivery pass), so a pass whose lease
    # ran out neither sends nor settles a row another deliverer took; a message sent in several parts keeps the
    # parts already out (`progress`), so a retry sends only the rest; a row that failed too often is `dead`
    # (`dead_at`), kept for the operator and never retried by itself. The conversation index serves the
    # queries that read one conversation (the console, the context snapshot).
    """
    ALTER TABLE outbox ADD COLUMN lease_token uuid;
    ALTER TABLE outbox ADD COLUMN progress jsonb;
    ALTER TABLE outbox ADD COLUMN dead_at timestamptz;
    CREATE INDEX outbox_conversation ON outbox (channel, conversation, id);
    CREATE INDEX outbox_dead ON outbox (channel) WHERE state = 'dead';
    """,
    # 10: Stripe's webhook events, each stored once by Stripe's event id before the endpoint answers 2xx, then handled
    # by a job: `object_key` is what the event is about (a subscription, else its own object) and `applied` says the
    # event set that object's state, so an older event arriving later is recorded and not applied.
    """
    CREATE TABLE stripe_events (
        id           text PRIMARY KEY,
        type         text NOT NULL,
        created      timestamptz NOT NULL,
        object_key   text NOT NULL,
        payload      jsonb NOT NULL,
        received_at  timestamptz NOT NULL,
        state        text NOT NULL DEFAULT 'received',
        outcome      text,
        detail       text NOT NULL DEFAULT '',
        applied      boolean NOT NULL DEFAULT false,
        intent_id    bigint REFERENCES intents(id),
        handled_at   timestamptz
    );
    CREATE INDEX stripe_events_applied ON stripe_events (object_key, created) WHERE applied;
    CREATE INDEX stripe_events_received ON stripe_events (received_at) WHERE state = 'received';
    """,
    # 11: the operator's mailbox (`orchestrator/inbox`). A cursor per folder: the last UID read, valid only with
    # the folder's UIDVALIDITY; and every message read, once per (folder, uidvalidity, uid), with what became of
    # it (remembered, a reply to a run's email, an unknown sender, unreadable and why). Message-IDs are indexed
    # so that a folder renumbered by its server (a new UIDVALIDITY) is not read into memory twice.
    """
    CREATE TABLE mailbox_cursors (
        folder       text PRIMARY KEY,
        uidvalidity  bigint NOT NULL,
        last_uid     bigint NOT NULL,
        polled_at    timestamptz NOT NULL
    );
    CREATE TABLE inbound_emails (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        folder       text NOT NULL,
        uidvalidity  bigint NOT NULL,
        uid          bigint NOT NULL,
        status       text NOT NULL,
        size         bigint NOT NULL,
        message_id   text,
        sender       text NOT NULL DEFAULT '',
        sender_name  text NOT NULL DEFAULT '',
        subject      text NOT NULL DEFAULT '',
        sent_at      timestamptz,
        received_at  timestamptz NOT NULL,
        contact_id   text,
        memory_id    bigint,
        action_key   text,
        run_id       bigint,
        preview      text NOT NULL DEFAULT '',
        attachments  jsonb NOT NULL DEFAULT '[]',
        detail       text NOT NULL DEFAULT '',
        UNIQUE (folder, uidvalidity, uid)
    );
    CREATE INDEX inbound_emails_message_id ON inbound_emails (folder, message_id) WHERE message_id IS NOT NULL;
    CREATE INDEX inbound_emails_run ON inbound_emails (run_id, id) WHERE run_id IS NOT NULL;
    """,
    # 12: a run names the hold that advances it (`owner`, the run lock's token), so a worker whose lock was lost
    # and whose run was taken over writes nothing more for it (`ownership.RunLock.own_row`). Null until held.
    """
    ALTER TABLE runs ADD COLUMN owner text;
    """,
    # 13: a Stripe event whose handling keeps failing is counted and given up on (`dead`) instead of swept forever;
    # a signed one that opsos cannot read is stored as `unreadable` (both are states of the same text column).
    """
    ALTER TABLE stripe_events ADD COLUMN attempts integer NOT NULL DEFAULT 0, ADD COLUMN last_error text;
    CREATE INDEX stripe_events_dead ON stripe_events (received_at) WHERE state = 'dead';
    """,
    # 14: each audit anchor written to the anchor file is marked here, so a file deleted or replaced with an older
    # copy shows as anchors missing from it (`anchors.verify`), not as a chain that was simply never anchored.
    """
    CREATE TABLE audit_anchor_marks (
        event_id bigint PRIMARY KEY,
        at       timestamptz NOT NULL
    );
    -- Append-only like the events: deleting the marks would make a lost anchor file read as "never anchored".
    CREATE FUNCTION audit_anchor_marks_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_anchor_marks is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$;
    CREATE TRIGGER audit_anchor_marks_append_only BEFORE UPDATE OR DELETE ON audit_anchor_marks
        FOR EACH ROW EXECUTE FUNCTION audit_anchor_marks_refuse_change();
    CREATE TRIGGER audit_anchor_marks_no_truncate BEFORE TRUNCATE ON audit_anchor_marks
        FOR EACH STATEMENT EXECUTE FUNCTION audit_anchor_marks_refuse_change();
    """,
    # 15: the operator's own schedules, made in chat (`orchestrator/schedules`), and each slot they fired or skipped.
    # A fire's primary key is its slot's claim: inserted in the transaction that makes the slot's intent.
    """
    CREATE TABLE schedules (
        id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        proposal            text NOT NULL UNIQUE,
        cron                text NOT NULL,
        timezone            text NOT NULL,
        request             text NOT NULL,
        kind                text NOT NULL,
        workflow            text NOT NULL,
        budget_monthly_usd  numeric(12, 4) NOT NULL,
        created_by          text NOT NULL,
        channel             text NOT NULL,
        conversation        text NOT NULL,
        state               text NOT NULL DEFAULT 'active',
        reason              text NOT NULL DEFAULT '',
        created_at          timestamptz NOT NULL,
        active_since        timestamptz NOT NULL,
        last_slot           timestamptz
    );
    CREATE TABLE schedule_fires (
        schedule_id  bigint NOT NULL REFERENCES schedules(id),
        slot         timestamptz NOT NULL,
        fired_at     timestamptz NOT NULL,
        fired_by     text NOT NULL,
        outcome      text NOT NULL,
        missed       int NOT NULL DEFAULT 0,
        intent_id    bigint REFERENCES intents(id),
        PRIMARY KEY (schedule_id, slot)
    );
    """,
    # 16: /metrics counts failed payments from what opsos stored (`views.metrics.CONNECTOR_ERRORS`): declined charges
    # in the connector journal and Stripe's `invoice.payment_failed` events; a partial index for each keeps a scrape
    # from reading the audit chain or every event.
    """
    CREATE INDEX audit_events_payment_declines ON audit_events (id)
        WHERE kind = 'connector.action_failed' AND payload->>'connector' = 'payments'
              AND payload->>'action' = 'charge' AND payload->>'error' LIKE 'ActionDeclined:%';
    CREATE INDEX stripe_events_payment_failed ON stripe_events (id) WHERE type = 'invoice.payment_failed';
    """,
]
