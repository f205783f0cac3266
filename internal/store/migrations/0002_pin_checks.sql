-- One PIN verdict per request. A worker that crashes after checking a PIN
-- retries the activity; the retry must read the verdict, not count a wrong
-- PIN a second time (which could lock the customer early).
CREATE TABLE pin_checks (
    request_id   text PRIMARY KEY REFERENCES requests(id),
    customer_id  text        NOT NULL REFERENCES customers(id),
    verified     boolean     NOT NULL,
    locked       boolean     NOT NULL,
    just_locked  boolean     NOT NULL,
    locked_until timestamptz,
    failures     int         NOT NULL,
    checked_at   timestamptz NOT NULL DEFAULT now()
);
