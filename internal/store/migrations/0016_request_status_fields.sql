-- The listing projection keeps every field the workflow's status shows, so
-- `starter list --json` and `starter status --json` answer alike about the
-- same request (issue 14). Rows written before stay at these defaults.
-- opened_at and ended_at-by-the-workflow are the workflow's clock, which
-- created_at (the row's insert) is not.
ALTER TABLE requests
    ADD COLUMN opened_at          timestamptz,
    ADD COLUMN pin_verified_at    timestamptz,
    ADD COLUMN pin_failures       integer NOT NULL DEFAULT 0 CHECK (pin_failures >= 0),
    ADD COLUMN locked_until       timestamptz,
    ADD COLUMN approval_deadline  timestamptz,
    ADD COLUMN break_glass        boolean NOT NULL DEFAULT false,
    ADD COLUMN second_approver_id text,
    ADD COLUMN recipients         integer NOT NULL DEFAULT 0 CHECK (recipients >= 0),
    ADD COLUMN cancel_actor_id    text,
    ADD COLUMN cancelled_at       timestamptz,
    ADD COLUMN executed_at        timestamptz,
    ADD COLUMN reference          text;
