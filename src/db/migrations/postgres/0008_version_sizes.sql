-- Quotas (SPEC section 20, db/quota.rs): each version's size in bytes, recorded
-- with it; NULL for versions recorded before, filled from their index lines
-- by the repair at start.
ALTER TABLE versions ADD COLUMN size BIGINT;
