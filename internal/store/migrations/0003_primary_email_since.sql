-- When the primary address became the primary. Imported addresses come from
-- billing and count as established (the epoch default); an address that
-- Vigil itself made primary (change_account_email) is new, and must age like
-- a contact before it receives notices. Otherwise an attacker who got one
-- email change through would be the only one told about the next request.
ALTER TABLE customers ADD COLUMN primary_email_since timestamptz NOT NULL DEFAULT 'epoch';
