-- Phone numbers on file, for notices the owner of the customer's mailbox
-- does not receive. They age like contact addresses: a number gets notices
-- once it was both added and verified at least VIGIL_ESTABLISHED_AFTER ago,
-- by Vigil's clock for any number an import adds to an existing customer.
CREATE TABLE customer_phones (
    customer_id text        NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    -- E.164, validated by the importer; the check only keeps out what is
    -- plainly not one.
    phone       text        NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    added_at    timestamptz NOT NULL DEFAULT now(),
    verified_at timestamptz,
    PRIMARY KEY (customer_id, phone)
);
