-- Break-glass consents: a request decided outside Slack needs two senior
-- agents, each consenting with their own credentials, in either order.
--
-- A consent is pending until it expires or is paired with another senior's
-- consent to the same decision; pairing sets pair_id (the older consent's
-- id) and used_at on both, in the transaction that records the second. The
-- worker reads the pair before a break-glass approval passes the approval
-- gate: a decision without one is refused (whoever sent it to Temporal).
CREATE TABLE break_glass_consents (
    id         bigserial PRIMARY KEY,
    request_id text        NOT NULL REFERENCES requests(id),
    agent_id   text        NOT NULL REFERENCES agents(id),
    decision   text        NOT NULL CHECK (decision IN ('approve', 'reject')),
    reason     text        NOT NULL CHECK (reason <> ''),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL CHECK (expires_at > created_at),
    pair_id    bigint      REFERENCES break_glass_consents(id),
    used_at    timestamptz,
    CHECK ((pair_id IS NULL) = (used_at IS NULL))
);
CREATE INDEX break_glass_consents_request_idx ON break_glass_consents (request_id);
