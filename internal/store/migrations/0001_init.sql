-- Vigil's initial schema. Applied once, in one transaction, by Store.Migrate.

CREATE TABLE customers (
    id                  text PRIMARY KEY CHECK (id <> ''),
    name                text NOT NULL DEFAULT '',
    primary_email       text NOT NULL,
    pin_hash            text NOT NULL,
    pin_failed_attempts int  NOT NULL DEFAULT 0 CHECK (pin_failed_attempts >= 0),
    pin_first_failed_at timestamptz,
    pin_locked_until    timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customer_contacts (
    customer_id text        NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    email       text        NOT NULL CHECK (email <> ''),
    added_at    timestamptz NOT NULL DEFAULT now(),
    verified_at timestamptz
);
-- One row per address per customer, whatever its case.
CREATE UNIQUE INDEX customer_contacts_email_key ON customer_contacts (customer_id, lower(email));

CREATE TABLE customer_servers (
    server_id   text PRIMARY KEY CHECK (server_id <> ''),
    customer_id text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    hostname    text NOT NULL DEFAULT ''
);
CREATE INDEX customer_servers_customer_idx ON customer_servers (customer_id);

CREATE TABLE agents (
    id            text PRIMARY KEY CHECK (id <> ''),
    name          text NOT NULL,
    email         text NOT NULL DEFAULT '',
    team          text NOT NULL DEFAULT 'Support',
    role          text NOT NULL CHECK (role IN ('agent', 'senior', 'admin')),
    slack_user_id text UNIQUE CHECK (slack_user_id <> ''),
    token_hash    bytea UNIQUE CHECK (length(token_hash) > 0),
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE requests (
    id              text PRIMARY KEY CHECK (id <> ''),
    workflow_id     text NOT NULL UNIQUE,
    action          text NOT NULL,
    customer_id     text NOT NULL REFERENCES customers(id),
    requester_id    text NOT NULL REFERENCES agents(id),
    server_id       text NOT NULL DEFAULT '',
    email           text NOT NULL DEFAULT '',
    reason          text NOT NULL,
    status          text NOT NULL,
    approver_id     text,
    decision        text,
    decision_reason text,
    decided_at      timestamptz,
    slack_channel   text,
    slack_ts        text,
    notified_at     timestamptz,
    cooling_ends_at timestamptz,
    cancelled_by    text,
    cancel_reason   text,
    outcome_detail  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz
);
CREATE INDEX requests_customer_idx  ON requests (customer_id);
CREATE INDEX requests_requester_idx ON requests (requester_id);
CREATE INDEX requests_status_idx    ON requests (status);
CREATE INDEX requests_created_idx   ON requests (created_at DESC, id DESC);

-- audit_events is append-only, and the database enforces it: the triggers
-- fire for every role, the table owner and superusers included (local trust
-- auth connects as one). ENABLE ALWAYS keeps them firing when
-- session_replication_role is 'replica'. Only dropping or disabling the
-- triggers, a DDL change that needs the owner, gets around them.
CREATE TABLE audit_events (
    id         bigserial PRIMARY KEY,
    request_id text,
    actor      text        NOT NULL,
    event      text        NOT NULL,
    details    jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_request_idx ON audit_events (request_id, id);
-- AuditOnce relies on this index: activity retries append an event once.
CREATE UNIQUE INDEX audit_events_dedupe_key ON audit_events (request_id, event, (details->>'dedupe'))
    NULLS NOT DISTINCT WHERE details ? 'dedupe';

CREATE FUNCTION audit_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();
ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_no_update_delete;
ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_no_truncate;

REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM PUBLIC;

CREATE TABLE executions (
    request_id      text PRIMARY KEY REFERENCES requests(id),
    action          text NOT NULL,
    idempotency_key text NOT NULL UNIQUE CHECK (idempotency_key <> ''),
    state           text NOT NULL CHECK (state IN ('started', 'done')),
    attempts        int  NOT NULL DEFAULT 0,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    result          jsonb
);

CREATE TABLE cancel_tokens (
    id         text PRIMARY KEY CHECK (id <> ''),
    request_id text        NOT NULL REFERENCES requests(id),
    recipient  text        NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cancel_tokens_request_idx ON cancel_tokens (request_id);
