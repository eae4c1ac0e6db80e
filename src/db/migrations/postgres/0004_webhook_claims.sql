-- One node delivers a webhook at a time; see the SQLite migration 5.
ALTER TABLE webhook_cursors ADD COLUMN claimed_by TEXT COLLATE "C";
ALTER TABLE webhook_cursors ADD COLUMN claim_expires_ms BIGINT NOT NULL DEFAULT 0;
