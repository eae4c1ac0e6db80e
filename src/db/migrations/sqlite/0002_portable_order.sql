-- What the queries shared with Postgres need: the order versions were
-- recorded in as a column (Postgres has no rowid), numbered from the rowid
-- for the rows there are, and case-insensitive logins by lower(login).
ALTER TABLE versions ADD COLUMN seq INTEGER;
UPDATE versions SET seq = rowid;
CREATE INDEX versions_seq ON versions(seq);
CREATE INDEX users_login_lower ON users(lower(login));
