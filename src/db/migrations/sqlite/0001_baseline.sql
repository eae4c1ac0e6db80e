-- The schema as cairn made it before versioned migrations (every table
-- CREATE ... IF NOT EXISTS): applied to a new database, and a no-op on a
-- database made by that code, which is adopted as version 1 (migrate.rs
-- adds `users.password_hash` to databases older still).
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    login TEXT NOT NULL UNIQUE,
    email TEXT,
    created_at TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    delete_after TEXT,             -- set by the user's erasure request
    password_hash TEXT             -- argon2id PHC string; NULL: no web password (account.rs)
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    scopes TEXT NOT NULL,          -- JSON array; the core issues all scopes
    packages TEXT NOT NULL,        -- JSON array of name patterns; empty = all
    expires_at TEXT,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS packages (
    key TEXT PRIMARY KEY,          -- canonical name: lowercase, '_' as '-'
    name TEXT NOT NULL,            -- first published spelling
    confusable TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS packages_confusable ON packages(confusable);
CREATE TABLE IF NOT EXISTS owners (
    package TEXT NOT NULL REFERENCES packages(key),
    user_id INTEGER NOT NULL REFERENCES users(id),
    added_at TEXT NOT NULL,
    PRIMARY KEY (package, user_id)
);
CREATE TABLE IF NOT EXISTS versions (
    package TEXT NOT NULL,
    version TEXT NOT NULL,         -- without build metadata: the burned identity
    vers TEXT NOT NULL,            -- as published
    sha256 TEXT NOT NULL,
    published_at TEXT NOT NULL,
    publisher INTEGER REFERENCES users(id),
    deleted_at TEXT,
    PRIMARY KEY (package, version)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    user_id INTEGER,
    token_id INTEGER,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    addr TEXT,
    outcome TEXT NOT NULL
);
-- Download statistics (jobs/stats.rs): counts per version per UTC day
-- (days since 1970-01-01), all-time totals, and the fingerprints of every
-- counted log line (sorted little-endian u64 arrays, one row per day and
-- top byte of the fingerprint) so no line is ever counted twice.
CREATE TABLE IF NOT EXISTS stats_daily (
    day INTEGER NOT NULL,
    package TEXT NOT NULL,         -- canonical name
    vers TEXT NOT NULL,            -- as published
    count INTEGER NOT NULL,
    PRIMARY KEY (day, package, vers)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats_totals (
    package TEXT NOT NULL,
    vers TEXT NOT NULL,
    total INTEGER NOT NULL,
    PRIMARY KEY (package, vers)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats_seen (
    day INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    fps BLOB NOT NULL,
    PRIMARY KEY (day, bucket)
);
-- Effects of committed writes not made yet (publish/effects.rs): a
-- package's derived files by index path, or `owners:{name}`.
CREATE TABLE IF NOT EXISTS pending_effects (key TEXT PRIMARY KEY, error TEXT NOT NULL, since TEXT NOT NULL);
-- Web sessions (session.rs).
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,     -- SHA-256 of the cookie's secret
    user_id INTEGER NOT NULL REFERENCES users(id),
    token_id INTEGER REFERENCES tokens(id),  -- NULL: opened with a password
    created_at TEXT NOT NULL,
    seen INTEGER NOT NULL          -- unix seconds of the last use (recorded at most once a minute)
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id);
-- Device codes (device.rs).
CREATE TABLE IF NOT EXISTS device_codes (
    id INTEGER PRIMARY KEY,
    device_hash TEXT NOT NULL UNIQUE,  -- SHA-256 of the device code
    user_hash TEXT NOT NULL UNIQUE,    -- SHA-256 of the user code, ABCD-1234 form
    scopes TEXT NOT NULL,              -- JSON array asked for
    expires INTEGER NOT NULL,          -- unix seconds
    interval INTEGER NOT NULL,         -- seconds between polls; 5 more at each slow-down
    polled INTEGER,                    -- unix milliseconds of the last poll
    state TEXT NOT NULL,               -- pending, approved, denied, delivered
    user_id INTEGER REFERENCES users(id),  -- who approved
    packages TEXT                      -- JSON patterns the approver's rights allow
);
-- Live packages and versions (mod.rs `counts`), kept by the functions that
-- change `versions`; recomputed at open when a row is missing.
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
