-- Packages cached from upstream registries (SPEC section 16), keyed like
-- packages (db::Space). The index holds their lines; these rows are what
-- revalidation, the cooldown, blob misses and eviction need.
CREATE TABLE upstream_packages (
    key TEXT PRIMARY KEY,
    upstream TEXT NOT NULL,
    etag TEXT,                     -- validators of the upstream's last 200
    last_modified TEXT,
    checked_ms BIGINT NOT NULL       -- its last answer (200 or 304), unix ms
);
CREATE TABLE upstream_versions (
    key TEXT NOT NULL,
    name TEXT NOT NULL,            -- as the index spells it
    version TEXT NOT NULL,
    upstream TEXT NOT NULL,
    cksum TEXT NOT NULL,
    first_seen BIGINT NOT NULL,      -- unix seconds cairn first saw the line (the cooldown without pubtime)
    log_index BIGINT,                -- its first cache entry in the log
    fetched_ms BIGINT,               -- its blob's last fetch (NULL: not cached, or evicted)
    size BIGINT,
    PRIMARY KEY (key, version)
);
CREATE INDEX upstream_versions_cksum ON upstream_versions (cksum);
-- Names an administrator claimed for local use: never served from upstream.
CREATE TABLE upstream_claims (
    key TEXT PRIMARY KEY,
    claimed_at TEXT NOT NULL
);
