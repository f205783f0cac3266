-- When and from whom a server last moved to its customer.
--
-- An import can move an idle server to another customer, even to one it
-- creates, whose addresses billing dates as it likes. Requests on such a
-- server treat its new customer's addresses like new ones until the server
-- itself has been with that customer for the ageing period: arrived_at is
-- Vigil's clock, never the import's. NULL on both means the server has had
-- one customer as far as Vigil knows (its first record), and so rows from
-- before this migration keep working as they did.
ALTER TABLE customer_servers
    ADD COLUMN arrived_at timestamptz,
    ADD COLUMN moved_from text,
    ADD CONSTRAINT customer_servers_move_whole CHECK ((arrived_at IS NULL) = (moved_from IS NULL));
