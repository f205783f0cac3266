-- One open request per customer, action and target, enforced here so that
-- two opens racing each other cannot both win: the second INSERT waits for
-- the first one's transaction and then fails with a unique violation.
--
-- The target is the server for server actions and the address (any letter
-- case) for email actions; the store writes '' in the column an action does
-- not use, so one index over both columns covers every action, including
-- those with no target (one open per customer and action).
--
-- "Open" is ended_at IS NULL rather than a list of final statuses in the
-- predicate. The projection already keeps ended_at in step with the status:
-- the store sets it exactly when it writes a status that
-- internal/domain's Status.Final calls final, and a final request is frozen.
-- So domain stays the one place that says which statuses are final, and a
-- final status added there later frees the slot without another migration
-- (TestOneOpenRequestPerTarget walks domain.Statuses to hold us to it).
--
-- Open duplicates may already exist (nothing refused them before). They keep
-- running to their end, so that this migration can neither fail on them nor
-- end a live request behind its workflow's back: all but the oldest of each
-- group are marked legacy_duplicate and left out of the index. Nothing sets
-- the mark again; an ended request no longer matters to the index anyway.
ALTER TABLE requests ADD COLUMN legacy_duplicate boolean NOT NULL DEFAULT false;

UPDATE requests r SET legacy_duplicate = true
WHERE r.ended_at IS NULL AND EXISTS (
    SELECT 1 FROM requests o
    WHERE o.ended_at IS NULL
      AND o.customer_id = r.customer_id AND o.action = r.action
      AND o.server_id = r.server_id AND lower(o.email) = lower(r.email)
      AND (o.created_at, o.id) < (r.created_at, r.id));

CREATE UNIQUE INDEX requests_one_open ON requests (customer_id, action, server_id, lower(email))
    WHERE ended_at IS NULL AND NOT legacy_duplicate;
