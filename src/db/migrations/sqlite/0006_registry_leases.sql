-- The writer lease of each private organisation's registry on shared
-- storage (db/lease.rs); the public registry's is writer_lease's one row.
CREATE TABLE registry_leases (
    registry TEXT PRIMARY KEY,     -- the organisation's slug
    holder TEXT,                   -- NULL: free
    epoch INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL    -- unix milliseconds, the holder's clock
);
