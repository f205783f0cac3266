-- One open request per action and server, whoever the customer.
--
-- 0004's slot is keyed on the customer. A server belongs to one customer at
-- a time, but an admin import can move it: a request opened for the old
-- owner and one opened for the new owner were then two open reinstalls of
-- one machine. This index keys the server actions' slot on the server alone
-- (the store writes '' as the server of the other actions, which stay with
-- 0004's index).
--
-- Open duplicates across customers may already exist. As in 0004 they keep
-- running to their end: the oldest open request of each action and server
-- holds the slot, the others are marked legacy_duplicate and left out of
-- both indexes. Requests 0004 already marked are not counted, so a group
-- whose oldest open row is a legacy one still gets a holder. The subquery
-- reads the table as it was before this statement, so the marks made here
-- do not change who is the oldest.
UPDATE requests r SET legacy_duplicate = true
WHERE r.ended_at IS NULL AND NOT r.legacy_duplicate AND r.server_id <> '' AND EXISTS (
    SELECT 1 FROM requests o
    WHERE o.ended_at IS NULL AND NOT o.legacy_duplicate
      AND o.action = r.action AND o.server_id = r.server_id
      AND (o.created_at, o.id) < (r.created_at, r.id));

CREATE UNIQUE INDEX requests_one_open_server ON requests (action, server_id)
    WHERE ended_at IS NULL AND server_id <> '' AND NOT legacy_duplicate;
