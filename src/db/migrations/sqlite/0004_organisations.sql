-- Organisations (db/org.rs, SPEC section 15): members with a role, the
-- packages an organisation owns beside its users, and organisation tokens
-- (a token row with `org_id` set; `user_id` is the admin who made it).
CREATE TABLE orgs (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,     -- lowercase: letters, digits, '-'
    name TEXT NOT NULL,
    visibility TEXT NOT NULL,      -- public|private
    created_at TEXT NOT NULL
);
CREATE TABLE org_members (
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,            -- member|admin|owner
    added_at TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX org_members_user ON org_members(user_id);
CREATE TABLE org_owners (
    package TEXT NOT NULL REFERENCES packages(key),
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    added_at TEXT NOT NULL,
    PRIMARY KEY (package, org_id)
);
CREATE INDEX org_owners_org ON org_owners(org_id);
ALTER TABLE tokens ADD COLUMN org_id INTEGER REFERENCES orgs(id);
