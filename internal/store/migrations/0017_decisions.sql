-- Decisions: the web front records a senior's verified Slack decision (the
-- signed click, or the reject dialog's submission) before it sends the
-- decision to Temporal. The worker lets an approval or a rejection through
-- the approval gate only with a matching row, so a decide Update sent
-- around the web front (a raw Temporal client holding the codec key) names
-- no one who did not click.
CREATE TABLE decisions (
    id          bigserial PRIMARY KEY,
    request_id  text        NOT NULL REFERENCES requests(id),
    agent_id    text        NOT NULL REFERENCES agents(id),
    decision    text        NOT NULL CHECK (decision IN ('approve', 'reject')),
    slack_user  text        NOT NULL CHECK (slack_user <> ''),
    action_ts   text        NOT NULL CHECK (action_ts <> ''),
    recorded_at timestamptz NOT NULL
);
CREATE INDEX decisions_request_idx ON decisions (request_id);

-- When the binding began: decisions the workflows took before this
-- migration have no row (the web front did not record them yet) and are
-- not held to it, so requests running across the upgrade keep going.
CREATE TABLE decision_binding (
    one           boolean     PRIMARY KEY DEFAULT true CHECK (one),
    enforced_from timestamptz NOT NULL
);
INSERT INTO decision_binding (enforced_from) VALUES (now());
