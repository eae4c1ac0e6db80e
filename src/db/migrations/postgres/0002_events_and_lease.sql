-- The event log and webhook cursors (db/events.rs), and the writer lease
-- (db/lease.rs); see the SQLite migration 3 for the columns.
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    event TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    version TEXT COLLATE "C",
    index_commit TEXT COLLATE "C",
    at TEXT COLLATE "C" NOT NULL,
    dedup TEXT COLLATE "C" UNIQUE
);
CREATE TABLE webhook_cursors (
    url TEXT COLLATE "C" PRIMARY KEY,
    delivered BIGINT NOT NULL
);
CREATE TABLE writer_lease (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    holder TEXT COLLATE "C",
    epoch BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
INSERT INTO writer_lease (id, holder, epoch, expires_ms) VALUES (1, NULL, 0, 0);
