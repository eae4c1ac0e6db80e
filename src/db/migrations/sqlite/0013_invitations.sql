-- Invitations by email (db/invitation.rs, SPEC section 19): pending until
-- the invitee accepts or declines, or until `expires_at` (7 days). The
-- link's token is kept as its SHA-256 only. One pending invitation per
-- address and organisation: inviting again replaces it.
CREATE TABLE invitations (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    email TEXT NOT NULL,           -- lowercase
    role TEXT NOT NULL,            -- member|admin|owner
    token_hash TEXT NOT NULL UNIQUE,
    invited_by INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    UNIQUE (org_id, email)
);
