-- Whether a user is mailed when a version of a package they own is
-- published, yanked or unyanked, or its owners change (SPEC section 19).
ALTER TABLE users ADD COLUMN notify INTEGER NOT NULL DEFAULT 1;
