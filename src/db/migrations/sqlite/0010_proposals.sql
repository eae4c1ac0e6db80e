-- Proposals (SPEC section 19, db/proposals.rs): a change to one text file
-- of a package, made against one of its versions by any signed-in user
-- (a member, in a private organisation's registry); and each package's
-- active candidate, the owner's composition of proposals merged three-way
-- on the newest version, until it is published.
CREATE TABLE proposals (
    id INTEGER PRIMARY KEY,
    package TEXT NOT NULL,          -- its key (db::Space)
    author_id INTEGER NOT NULL REFERENCES users(id),
    title TEXT NOT NULL,
    intent TEXT NOT NULL,
    base_version TEXT NOT NULL,     -- the version whose file it changes
    path TEXT NOT NULL,
    content TEXT NOT NULL,          -- the file as the author proposes it
    status TEXT NOT NULL,           -- open, rejected, withdrawn, merged
    merged_version TEXT,            -- the version that published it
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX proposals_package ON proposals(package, status);
CREATE INDEX proposals_author ON proposals(author_id);
CREATE TABLE candidates (
    package TEXT PRIMARY KEY,       -- its key (db::Space): one active candidate a package
    base_version TEXT NOT NULL,     -- the newest version it was composed on
    proposal_ids TEXT NOT NULL,     -- JSON array, in merge order
    files TEXT NOT NULL,            -- JSON {path: content}: the merged files
    conflicts TEXT NOT NULL,        -- JSON array of conflicts with their hunks
    updated_at TEXT NOT NULL
);
