-- The PIN is checked by the web front before a request's workflow starts,
-- so that it never enters Temporal; the workflow reads the verdict.

-- One verdict per request, bound to everything the request is. The
-- workflow's PIN gate claims it with its own input and workflow id and
-- consumes it once: a verdict reused for another customer, action, target or
-- requester, by another workflow id, or a second time by another run, is
-- refused. No foreign key to requests: the verdict is written before the
-- request's row, which is committed only once Temporal took the start.
-- A wrong PIN or a locked customer gets a verdict too (never consumable), so
-- a workflow started by hand with such a request's id finds a refusal, not
-- nothing.
CREATE TABLE pin_verdicts (
    request_id      text        PRIMARY KEY CHECK (request_id <> ''),
    workflow_id     text        NOT NULL CHECK (workflow_id <> ''),
    customer_id     text        NOT NULL REFERENCES customers(id),
    action          text        NOT NULL,
    server_id       text        NOT NULL DEFAULT '',
    email           text        NOT NULL DEFAULT '',
    requester_id    text        NOT NULL REFERENCES agents(id),
    verified        boolean     NOT NULL,
    locked          boolean     NOT NULL,
    just_locked     boolean     NOT NULL,
    locked_until    timestamptz,
    failures        int         NOT NULL,
    checked_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    -- set when the start it was made for did not happen
    voided_at       timestamptz,
    consumed_at     timestamptz,
    consumed_by_run text
);

-- Every wrong PIN, with who typed it, for the rolling windows: the
-- customer's short window and daily budget, and the agent's limit across
-- customers. Rows older than the longest window are pruned as checks go.
CREATE TABLE pin_failures (
    id          bigserial   PRIMARY KEY,
    customer_id text        NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    agent_id    text        NOT NULL DEFAULT '',
    failed_at   timestamptz NOT NULL
);
CREATE INDEX pin_failures_customer_idx ON pin_failures (customer_id, failed_at);
CREATE INDEX pin_failures_agent_idx ON pin_failures (agent_id, failed_at) WHERE agent_id <> '';

-- A verified PIN clears the customer's count: failures up to this one (an id
-- of pin_failures) no longer count against the customer; they still count
-- against the agent who typed them.
ALTER TABLE customers ADD COLUMN pin_cleared_id bigint NOT NULL DEFAULT 0;

-- The failures the old fixed-window counters held carry over, at the time
-- their window started (the only time kept), so a lockout in the making is
-- not forgotten by the upgrade. pin_failed_attempts and pin_first_failed_at
-- are no longer written.
INSERT INTO pin_failures (customer_id, failed_at)
    SELECT c.id, c.pin_first_failed_at
    FROM customers c, generate_series(1, c.pin_failed_attempts)
    WHERE c.pin_first_failed_at IS NOT NULL;

-- Security alerts raised where no workflow runs (a PIN check in the web
-- front): written in the transaction that records what they report, so none
-- is lost, and relayed to the security channel by the worker. kind and
-- details are facts; the relay words them.
CREATE TABLE security_alerts (
    id            bigserial   PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind <> ''),
    -- a retried writer (an activity) queues its alert once
    dedupe        text        UNIQUE,
    details       jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    attempts      int         NOT NULL DEFAULT 0,
    claimed_until timestamptz,
    sent_at       timestamptz
);
CREATE INDEX security_alerts_unsent_idx ON security_alerts (id) WHERE sent_at IS NULL;
