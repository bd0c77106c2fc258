"""The connectors' tables: idempotency records, the contacts, and the sandbox backends' own state (payments, books)."""

MIGRATIONS: list[str] = [
    # 1: idempotency records for every outside action, the sandbox payments ledger and the sandbox CRM.
    """
    CREATE TABLE connector_actions (
        key         text PRIMARY KEY,
        connector   text NOT NULL,
        action      text NOT NULL,
        state       text NOT NULL,
        request     jsonb NOT NULL,
        result      jsonb,
        attempts    int NOT NULL DEFAULT 0,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE payments_ledger (
        id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key           text NOT NULL,
        customer      text NOT NULL,
        kind          text NOT NULL,
        amount_cents  int NOT NULL,
        currency      text NOT NULL,
        status        text NOT NULL,
        reason        text NOT NULL DEFAULT '',
        at            timestamptz NOT NULL DEFAULT now()
    );
    CREATE UNIQUE INDEX payments_ledger_one_success ON payments_ledger (key, kind) WHERE status = 'succeeded';
    CREATE TABLE payments_sandbox_faults (
        customer        text PRIMARY KEY,
        reason          text NOT NULL,
        failures_left   int NOT NULL
    );
    CREATE TABLE crm_contacts (
        id              text PRIMARY KEY,
        email           text NOT NULL,
        name            text NOT NULL,
        plan            text NOT NULL,
        status          text NOT NULL,
        access          text NOT NULL DEFAULT 'active',
        monthly_cents   int NOT NULL,
        last_paid_at    timestamptz,
        notes           text NOT NULL DEFAULT ''
    );
    """,
    # 2: the sandbox books, now the books connector's. Until this version the orchestrator kept them as
    # `book_transactions` (its migration 3); its migration 6 moves their rows here and drops that table.
    """
    CREATE TABLE books_transactions (
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
    # 3: exclusive claims. A pending key names the attempt that holds it (its run lock's token) and until when, on
    # the database's clock; until then no other attempt acts on it. Rows from before have neither: free to take.
    """
    ALTER TABLE connector_actions ADD COLUMN owner text, ADD COLUMN claimed_until timestamptz;
    """,
    # 4: the contacts as the operator's CRM, filled by imports: tags, the columns opsos has no field for, when
    # each was added and last imported. One contact per address whatever its case (an import matches by it);
    # a database holding two contacts with one address stops here, naming it, rather than guess which to keep.
    # Imported contacts get ids from a sequence (see `contact_import`).
    """
    ALTER TABLE crm_contacts
        ADD COLUMN tags         text[] NOT NULL DEFAULT '{}',
        ADD COLUMN attributes   jsonb NOT NULL DEFAULT '{}',
        ADD COLUMN created_at   timestamptz NOT NULL DEFAULT now(),
        ADD COLUMN updated_at   timestamptz NOT NULL DEFAULT now();
    CREATE UNIQUE INDEX crm_contacts_email ON crm_contacts (lower(email));
    CREATE INDEX crm_contacts_name ON crm_contacts (lower(name) text_pattern_ops);
    CREATE INDEX crm_contacts_created ON crm_contacts (created_at DESC);
    CREATE SEQUENCE crm_contact_ids;
    """,
    # 5: contacts linked to their Stripe customers (`opsos contacts sync stripe`), one contact per Stripe customer;
    # and where a sync of an outside source stopped: the last customer of each finished page and the counts so far,
    # so an interrupted sync goes on from there (a row exists only while a sync is unfinished).
    """
    ALTER TABLE crm_contacts ADD COLUMN stripe_customer_id text;
    CREATE UNIQUE INDEX crm_contacts_stripe_customer ON crm_contacts (stripe_customer_id)
        WHERE stripe_customer_id IS NOT NULL;
    CREATE TABLE contact_syncs (
        source      text PRIMARY KEY,
        after       text NOT NULL,
        pages       int NOT NULL,
        inserted    int NOT NULL,
        updated     int NOT NULL,
        unchanged   int NOT NULL,
        skipped     int NOT NULL,
        updated_at  timestamptz NOT NULL
    );
    """,
    # 6: the books name imported payments by their backend (`PaymentsReads.source`: 'sandbox' or 'stripe'); the
    # sandbox ledger's rows imported before kept 'ledger', and would be imported again under the new name.
    """
    UPDATE books_transactions SET source = 'sandbox' WHERE source = 'ledger';
    """,
]
