-- The security role: the security team unlocks customers that wrong PINs
-- locked (audited and alerted) and exports the audit trail. 0001's inline
-- CHECK is named agents_role_check by Postgres.
ALTER TABLE agents DROP CONSTRAINT IF EXISTS agents_role_check;
ALTER TABLE agents ADD CONSTRAINT agents_role_check CHECK (role IN ('agent', 'senior', 'admin', 'security'));
