-- The writer lease of each private organisation's registry on shared
-- storage (db/lease.rs); the public registry's is writer_lease's one row.
CREATE TABLE registry_leases (
    registry TEXT PRIMARY KEY,     -- the organisation's slug
    holder TEXT,                   -- NULL: free
    epoch BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL    -- unix milliseconds, the holder's clock
);
