-- Identity (SPEC section 17, db/identity.rs): accounts bound to an OpenID
-- provider's (issuer, sub); sign-ins under way (state, nonce and PKCE
-- verifier, for ten minutes); which organisation roles a provider's groups
-- granted (withdrawn with the group, unlike roles given by hand); trust
-- configurations of trusted publishing; the identity tokens already
-- exchanged (each `jti` once); and the provenance a trusted-publishing
-- token gives the versions it publishes.
CREATE TABLE oidc_identities (
    issuer TEXT NOT NULL,
    sub TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id),
    PRIMARY KEY (issuer, sub)
);
CREATE TABLE oidc_logins (
    state_hash TEXT PRIMARY KEY,   -- SHA-256 of the state parameter
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    verifier TEXT NOT NULL,
    next TEXT NOT NULL,            -- where the sign-in goes back to
    expires INTEGER NOT NULL       -- unix seconds
);
ALTER TABLE org_members ADD COLUMN granted_by TEXT;  -- NULL: by hand; else the provider's name
CREATE TABLE trusted_publishers (
    id INTEGER PRIMARY KEY,
    package TEXT NOT NULL,         -- its key (db::Space)
    issuer TEXT NOT NULL,
    repository TEXT NOT NULL,
    workflow TEXT NOT NULL,
    environment TEXT,
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL
);
CREATE INDEX trusted_publishers_package ON trusted_publishers(package);
CREATE TABLE trusted_jtis (
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires INTEGER NOT NULL,      -- unix seconds: the token's exp, after which the row may go
    PRIMARY KEY (issuer, jti)
);
ALTER TABLE tokens ADD COLUMN provenance TEXT;  -- JSON of a trusted-publishing token; NULL otherwise
