-- One node delivers a webhook at a time (db/events.rs `claim`): the
-- node claiming it and until when (unix milliseconds, its clock).
ALTER TABLE webhook_cursors ADD COLUMN claimed_by TEXT;
ALTER TABLE webhook_cursors ADD COLUMN claim_expires_ms INTEGER NOT NULL DEFAULT 0;
