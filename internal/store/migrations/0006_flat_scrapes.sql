-- Scrapes and listings whose cost follows the open requests, not history.
--
-- "Open" is ended_at IS NULL, as in 0004: the store sets ended_at exactly
-- when it writes a status that domain calls final, and a final request is
-- frozen.
--
-- The open listing (ListFilter.OpenOnly) reads this partial index in its
-- order and stops at the limit; the full creation-time index would walk past
-- every ended request newer than the oldest open one.
CREATE INDEX requests_open_created_idx ON requests (created_at DESC, id DESC)
    WHERE ended_at IS NULL;

-- The metrics scrape counts every status, ended ones included. The open
-- statuses are counted from the open rows (the partial index above finds
-- them; their count is bounded by what is in flight). The ended statuses are
-- counted here, one row per final status, so the scrape never reads the
-- ended rows at all. An index on (status) would still visit one index entry
-- per request ever made on each scrape; this table is a dozen rows.
--
-- The triggers keep it in the same transaction as the write to requests,
-- whoever writes (the store, a migration, an operator's UPDATE), so the
-- counts cannot drift from the rows. They are statement-level with
-- transition tables, so a bulk write costs one pass, and they touch a
-- counter row only when a statement changes how many requests are ended in
-- a status: the common update of an open request locks nothing here.
CREATE TABLE request_ended_counts (
    status text   PRIMARY KEY,
    n      bigint NOT NULL
);

INSERT INTO request_ended_counts (status, n)
    SELECT status, count(*) FROM requests WHERE ended_at IS NOT NULL GROUP BY status;

-- The delta per status is new ended rows minus old ended rows, applied by one
-- INSERT ... ON CONFLICT per statement; ORDER BY status makes concurrent
-- statements take the counter rows in one order, so they cannot deadlock.
-- n has no CHECK (n >= 0): Postgres checks the proposed row of an INSERT
-- before it finds the conflict, so a negative delta (an ended request moved
-- between final statuses, a delete) would be refused; a counter whose row
-- exists never goes below zero, since every ended row was counted into it.
CREATE FUNCTION request_ended_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO request_ended_counts AS c (status, n)
        SELECT status, count(*) FROM new_rows WHERE ended_at IS NOT NULL GROUP BY status ORDER BY status
    ON CONFLICT (status) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END $$;

CREATE FUNCTION request_ended_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO request_ended_counts AS c (status, n)
        SELECT status, sum(k) FROM (
            SELECT status, 1 AS k FROM new_rows WHERE ended_at IS NOT NULL
            UNION ALL
            SELECT status, -1 FROM old_rows WHERE ended_at IS NOT NULL) d
        GROUP BY status HAVING sum(k) <> 0 ORDER BY status
    ON CONFLICT (status) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END $$;

CREATE FUNCTION request_ended_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO request_ended_counts AS c (status, n)
        SELECT status, -count(*) FROM old_rows WHERE ended_at IS NOT NULL GROUP BY status ORDER BY status
    ON CONFLICT (status) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END $$;

CREATE TRIGGER requests_ended_counts_insert AFTER INSERT ON requests
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION request_ended_counts_insert();
CREATE TRIGGER requests_ended_counts_update AFTER UPDATE ON requests
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION request_ended_counts_update();
CREATE TRIGGER requests_ended_counts_delete AFTER DELETE ON requests
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION request_ended_counts_delete();
