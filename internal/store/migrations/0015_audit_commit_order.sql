-- The audit export's cursor follows commit order, not id order. A bigserial
-- id is taken at insert, so a transaction that inserts its event and commits
-- later (the open holds its transaction across the Temporal start) would
-- show an event below a cursor a reader already passed, and the reader would
-- skip it for ever. xid is the top-level transaction id of the writer
-- (pg_current_xact_id returns it in a subtransaction too); the export pages
-- by (xid, id) and returns only the rows of transactions below
-- pg_snapshot_xmin(pg_current_snapshot()): all those have ended, so no row
-- can later appear behind the cursor. The rows already here all get this
-- migration's xid, ahead of every later one, and keep their id order.
ALTER TABLE audit_events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX audit_events_commit_order_idx ON audit_events (xid, id);
