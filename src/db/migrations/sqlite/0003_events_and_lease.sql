-- The event log (db/events.rs): `dedup` makes re-emitting an index change
-- a no-op (recovery replays the history after the last event's commit):
-- "{commit} {event} {name} {version}". NULL for owner changes, which have
-- no commit and are written once, in the transaction of their rows.
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    event TEXT NOT NULL,           -- publish|yank|unyank|delete|deprecate|owners|advisory
    name TEXT NOT NULL,
    version TEXT,
    index_commit TEXT,
    at TEXT NOT NULL,              -- YYYY-MM-DDTHH:MM:SSZ
    dedup TEXT UNIQUE
);
CREATE TABLE IF NOT EXISTS webhook_cursors (
    url TEXT PRIMARY KEY,
    delivered INTEGER NOT NULL     -- the last event id the webhook acknowledged
);
-- The writer lease of several servers on one database (db/lease.rs): one
-- row; `epoch` moves on every taking.
CREATE TABLE writer_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT,                   -- NULL: free
    epoch INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL    -- unix milliseconds, the holder's clock
);
INSERT INTO writer_lease (id, holder, epoch, expires_ms) VALUES (1, NULL, 0, 0);
